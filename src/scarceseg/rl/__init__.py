"""The reinforcement-learning core: replay buffer, schedules, learners, environments."""
