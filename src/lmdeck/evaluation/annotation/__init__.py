"""Annotation queues: traces sent by a rule or by hand to a named queue, claimed under a lease and
labelled once by a reviewer of the queue's team; corrections become dataset rows.

``store`` holds the tables, ``feeder`` fills queues from their rules, ``service`` is what the
API serves (ownership, audit, export to the dataset registry).
"""
