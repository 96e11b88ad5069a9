-- One database per service (each service owns its tables and migration history).
CREATE DATABASE afinador_gateway;
CREATE DATABASE afinador_optimizer;
CREATE DATABASE afinador_evolution;
CREATE DATABASE afinador_reward;
