"""Online evaluation: sample live traces by rule and score them in the background."""
