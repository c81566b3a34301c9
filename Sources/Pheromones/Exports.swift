// `import Pheromones` brings in the whole framework: the core abstractions, the epoll reactor and
// TCP channels, and the embedded channel for unit tests.
@_exported import PheromonesCore
@_exported import PheromonesEmbedded
@_exported import PheromonesPosix
