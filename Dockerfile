# The lambda-freeze emulator with both runtime interface clients: awslambdaric for python3.11 (Debian's Python
# 3.11) and aws-lambda-ric for nodejs20.x (the base image's Node.js 20). docker-compose.yml builds and runs it.
#
# Every RUN step is a script of this repository that CI also runs natively (.ci/run → make test → the Makefile's
# .venv target → docker/install.sh, which starts with docker/system-packages.sh): the install path of the image is
# exercised on every change, without a Docker engine. tests/test_compose.py checks that it stays that way.
FROM node:20-bookworm-slim

WORKDIR /opt/lambda-freeze
# npm_config_nodedir: node-gyp builds aws-lambda-ric's addon against the headers the base image ships in
# /usr/local/include/node, instead of downloading them. The runtime client lives outside /opt: where a function's
# runtime gets Lambda's paths (docker-compose.yml says when), its layers cover /opt.
ENV PATH=/opt/lambda-freeze/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    LAMBDA_FREEZE_NODE_RIC_DIR=/var/lib/lambda-freeze/node-ric \
    npm_config_nodedir=/usr/local

# System packages in a layer of their own: they change far less often than the code.
COPY docker/system-packages.sh docker/
RUN docker/system-packages.sh --clean

COPY . .
RUN docker/install.sh

EXPOSE 8080
ENTRYPOINT ["lambda-freeze"]
# Inside a container the Invoke API has to listen on every interface to be reachable through a published port.
CMD ["serve", "--config", "samples/compose.toml", "--host", "0.0.0.0"]
