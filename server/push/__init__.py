"""Push: the hub (one pub/sub connection per process) and the per-subscriber machinery behind it.

Routes use `server.push.hub.Hub` and the `Subscriber` of `server.push.subscriber`; the other
modules are the hub's helpers.
"""
