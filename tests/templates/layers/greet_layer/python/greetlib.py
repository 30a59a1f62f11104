def greet(name):
    return f"hello {name}, from the greet layer"
