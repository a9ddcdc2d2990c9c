# A small image running `usercredits serve`: dependencies are resolved by uv from uv.lock in
# a build stage; the runtime stage holds only the virtual environment and runs as a user
# without privileges. It expects a MongoDB replica set (USERCREDITS_MONGODB_URI). GraphiQL's
# assets are bundled in a Node.js stage from the packages clients/graphiql's lock file pins,
# and go into the wheel beside the module that serves them.

FROM node:24-slim AS graphiql
WORKDIR /graphiql
COPY clients/graphiql/package.json clients/graphiql/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY clients/graphiql/build.mjs ./
COPY clients/graphiql/src src
RUN node build.mjs /assets

FROM python:3.12-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY usercredits usercredits
COPY --from=graphiql /assets usercredits/server/graphiql/assets
COPY catalogue catalogue
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 usercredits
COPY --from=build --chown=usercredits /app/.venv /app/.venv
COPY --from=build --chown=usercredits /app/catalogue /app/catalogue
ENV PATH=/app/.venv/bin:$PATH USERCREDITS_HOST=0.0.0.0 USERCREDITS_PORT=8000
USER usercredits
WORKDIR /app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["usercredits", "serve"]
