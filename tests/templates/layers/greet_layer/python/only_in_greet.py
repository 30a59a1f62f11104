WHERE = "greet layer"
