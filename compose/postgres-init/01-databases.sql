-- One database per service: each service owns its rows and its outbox/inbox.
CREATE DATABASE orders;
CREATE DATABASE inventory;
CREATE DATABASE payment;
CREATE DATABASE orchestrator;
