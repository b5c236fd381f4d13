"""Operations endpoints: `/healthz` for load balancers and compose health checks, `/metrics`
for Prometheus. Neither needs a signed-in user; `/metrics` has its own token (see views)."""
