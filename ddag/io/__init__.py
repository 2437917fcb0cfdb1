"""Reading and writing files: a leaf that models, engine and tasks may all use."""
