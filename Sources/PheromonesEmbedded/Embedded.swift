// The embedded (socket-free, virtual-time) event loop and channel live in this module.
