"""Policy: the steps of the request pipeline that decide whether and how a request goes through."""
