"""The mytorch autograder: data-driven tests run in a sandbox, scored in a separate process.

See autograder/README.md for the design and the TA guide.
"""
