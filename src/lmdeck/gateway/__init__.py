"""The gateway: app factory, thin routes, serving logic and the request pipeline."""
