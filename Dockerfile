# syntax=docker/dockerfile:1
# Multi-stage build of every vmcp-keepalive program. Targets:
#   scheduler  vmcp-keepalive-scheduler (ops HTTP on 9464: /metrics /healthz /readyz /admin/queues)
#   worker     vmcp-keepalive-worker    (ops HTTP on 9465: /metrics /healthz /readyz)
#   cli        vmcp-keepalive           (admin CLI: register / touch / end / status)
#   demo       demo backend and demo vMCP (vmcp-keepalive-demo-backend, vmcp-keepalive-demo-vmcp)
# e.g. docker build --target worker -t vmcp-keepalive-worker:0.1.0 .
ARG NODE_IMAGE=node:22-slim

# ---- build: full workspace install, compile every package to dist/ -------------------------
FROM ${NODE_IMAGE} AS build
ENV PNPM_VERSION=10.34.8 CI=true
RUN npm install -g --silent pnpm@${PNPM_VERSION}
WORKDIR /app
# Manifests first: the dependency layer is cached until a manifest or the lockfile changes.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml turbo.json tsconfig.base.json ./
COPY packages/shared/package.json packages/shared/
COPY packages/runtime/package.json packages/runtime/
COPY packages/testkit/package.json packages/testkit/
COPY packages/scheduler/package.json packages/scheduler/
COPY packages/worker/package.json packages/worker/
COPY packages/demo/package.json packages/demo/
COPY test/package.json test/
RUN pnpm install --frozen-lockfile
COPY packages packages
RUN pnpm build

# ---- prod-deps: production dependencies only, same lockfile ---------------------------------
FROM build AS prod-deps
RUN rm -rf node_modules packages/*/node_modules test/node_modules \
 && pnpm install --frozen-lockfile --prod

# ---- runtime: compiled code + production dependencies, unprivileged --------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=prod-deps /app/node_modules node_modules
COPY --from=prod-deps /app/package.json ./
COPY --from=prod-deps /app/packages packages
USER node
# Config: mount a YAML file and point KEEPALIVE_CONFIG at it; REDIS_URL, HTTP_HOST, HTTP_PORT,
# ADMIN_PASSWORD, LOG_LEVEL override it. In a container the ops server must listen beyond loopback.
ENV KEEPALIVE_CONFIG=/etc/vmcp-keepalive/config.yaml HTTP_HOST=0.0.0.0

FROM runtime AS scheduler
EXPOSE 9464
ENTRYPOINT ["node", "packages/scheduler/bin/vmcp-keepalive-scheduler.js"]

FROM runtime AS worker
EXPOSE 9465
ENTRYPOINT ["node", "packages/worker/bin/vmcp-keepalive-worker.js"]

FROM runtime AS cli
ENTRYPOINT ["node", "packages/scheduler/bin/vmcp-keepalive.js"]

FROM runtime AS demo
EXPOSE 8931
ENTRYPOINT ["node", "packages/demo/bin/vmcp-keepalive-demo-backend.js"]
CMD ["--host", "0.0.0.0", "--port", "8931", "--idle-ttl", "60s"]
