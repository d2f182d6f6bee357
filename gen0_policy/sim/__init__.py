"""MuJoCo worlds: embodiments, scenes, tasks, success checks and scripted experts."""
