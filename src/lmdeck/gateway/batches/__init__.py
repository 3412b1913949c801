"""Files (``/v1/files``) and batches (``/v1/batches``): uploads kept under the data directory, and
batches that lmdeck runs itself, row by row, through its own pipeline.

- :mod:`.files`: the file store (content on disk, 0600; the file objects in the database) and the
  check of a batch input file;
- :mod:`.store`: batch objects and each batch's done-set;
- :mod:`.runner`: the background tasks that run batches, resume them after a restart and
  cancel them;
- :mod:`.rows`: one row through the pipeline, into an output or error line.
"""
