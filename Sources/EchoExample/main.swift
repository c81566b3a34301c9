print("pheromones-echo: coming soon")
