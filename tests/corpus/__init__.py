"""The corpus of bad inputs (issue 15, "Real use"): each case runs the command line in-process and
expects one line on stderr, exit 2 and nothing written."""
