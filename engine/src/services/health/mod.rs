//! Health and readiness: what a load balancer and an operator ask of the process. `/health`
//! reports storage reachability and per-shard counters; `/ready` is 200 only while every shard
//! is running and the server is not shutting down, so a supervisor never routes work to a
//! process that cannot do it.

pub(crate) mod rest;
