# The same module as the greet layer's: this layer comes later, so its file wins, as in Lambda's /opt.
def greet(name):
    return f"hello {name}, from the override layer"
