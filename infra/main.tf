# Afinador on AWS: one ECS Fargate service per microservice, RDS PostgreSQL (one
# database per service), S3 for images, an ALB in front of the gateway, Cloud Map
# service discovery between services, secrets in Secrets Manager.
# See docs/DEPLOYMENT.md for the steps.

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws    = { source = "hashicorp/aws", version = "~> 5.60" }
    random = { source = "hashicorp/random", version = "~> 3.6" }
  }
}

provider "aws" {
  region = var.region
}

locals {
  name = "afinador-${var.environment}"
  # Service name → port, size and image. The reward service uses the ML image
  # (torch + transformers); it can move to GPU-backed EC2 capacity later.
  services = {
    gateway   = { port = 8000, cpu = 512, memory = 1024, image = var.image, public = true }
    optimizer = { port = 8001, cpu = 1024, memory = 2048, image = var.image, public = false }
    evolution = { port = 8002, cpu = 256, memory = 512, image = var.image, public = false }
    reward    = { port = 8003, cpu = 1024, memory = 4096, image = var.ml_image, public = false }
  }
  discovery_domain = "${local.name}.internal"
  service_url      = { for name, s in local.services : name => "http://${name}.${local.discovery_domain}:${s.port}" }
}
