print("pheromones: coming soon")
