variable "region" {
  type    = string
  default = "us-east-1"
}

variable "environment" {
  type    = string
  default = "prod"
}

variable "vpc_id" {
  type        = string
  description = "VPC to run in."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Subnets for tasks and the database (no public IPs)."
}

variable "public_subnet_ids" {
  type        = list(string)
  description = "Subnets for the load balancer."
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate for the gateway's HTTPS listener."
}

variable "image" {
  type        = string
  description = "Afinador image (docker build -t ... .)."
}

variable "ml_image" {
  type        = string
  description = "Afinador image with the ML extras (docker build --build-arg EXTRAS=ml)."
}

variable "db_instance_class" {
  type    = string
  default = "db.t4g.small"
}

variable "desired_count" {
  type        = map(number)
  description = "Replicas per service; all state is in PostgreSQL and S3, so any can scale."
  default     = { gateway = 2, optimizer = 1, evolution = 1, reward = 1 }
}
