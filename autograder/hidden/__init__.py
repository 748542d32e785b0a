"""The hidden tests: never copied into the student handout (see autograder/README.md)."""
