"""Episodes, datasets (LeRobot v3 layout), bag conversion, normalization and training windows."""
