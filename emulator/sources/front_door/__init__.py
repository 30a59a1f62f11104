"""The HTTP front door's engine side: API Gateway REST and HTTP APIs and function URLs in front of the pools."""
