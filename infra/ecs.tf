resource "aws_ecs_cluster" "main" {
  name = local.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_service_discovery_private_dns_namespace" "main" {
  name = local.discovery_domain
  vpc  = var.vpc_id
}

resource "aws_service_discovery_service" "svc" {
  for_each = local.services
  name     = each.key
  dns_config {
    namespace_id = aws_service_discovery_private_dns_namespace.main.id
    dns_records {
      ttl  = 10
      type = "A"
    }
  }
}

resource "aws_security_group" "tasks" {
  name   = "${local.name}-tasks"
  vpc_id = var.vpc_id
  ingress {
    description = "service to service and ALB to gateway"
    from_port   = 8000
    to_port     = 8003
    protocol    = "tcp"
    self        = true
  }
  ingress {
    from_port       = 8000
    to_port         = 8000
    protocol        = "tcp"
    security_groups = [aws_security_group.alb.id]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_cloudwatch_log_group" "svc" {
  for_each          = local.services
  name              = "/afinador/${var.environment}/${each.key}"
  retention_in_days = 30
}

locals {
  # Plain environment per service; names match each service's settings (README table).
  environment = {
    gateway = {
      GATEWAY_OPTIMIZER_URL    = local.service_url.optimizer
      GATEWAY_EVOLUTION_URL    = local.service_url.evolution
      GATEWAY_REWARD_URL       = local.service_url.reward
      STORAGE_URL              = "s3://${aws_s3_bucket.images.bucket}/images"
      AWS_REGION               = var.region
      GATEWAY_MIGRATE_ON_START = "false"
    }
    optimizer = { OPTIMIZER_MIGRATE_ON_START = "false" }
    evolution = { EVOLUTION_MIGRATE_ON_START = "false" }
    reward = {
      REWARD_MIGRATE_ON_START = "false"
      REWARD_STORAGE_URL      = "s3://${aws_s3_bucket.images.bucket}/reward"
      AWS_REGION              = var.region
    }
  }
  provider_secrets = {
    gateway   = ["LEONARDO_API_KEY", "REPLICATE_API_TOKEN"]
    optimizer = []
    evolution = ["OPENAI_API_KEY"]
    reward    = []
  }
}

resource "aws_ecs_task_definition" "svc" {
  for_each                 = local.services
  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task[each.key].arn
  container_definitions = jsonencode([{
    name         = each.key
    image        = each.value.image
    essential    = true
    portMappings = [{ containerPort = each.value.port, protocol = "tcp" }]
    environment = [for k, v in merge(
      { SERVICE = each.key, PORT = tostring(each.value.port), ENVIRONMENT = "production", LOG_LEVEL = "INFO" },
      local.environment[each.key]
    ) : { name = k, value = v }]
    secrets = concat(
      [
        { name = "${upper(each.key)}_DATABASE_URL", valueFrom = aws_secretsmanager_secret.database_url[each.key].arn },
        { name = "SERVICE_TOKEN", valueFrom = aws_secretsmanager_secret.service_token.arn },
      ],
      each.key == "gateway" ? [{ name = "GATEWAY_SESSION_SECRET", valueFrom = aws_secretsmanager_secret.session_secret.arn }] : [],
      [for k in local.provider_secrets[each.key] : { name = k, valueFrom = aws_secretsmanager_secret.provider[k].arn }]
    )
    healthCheck = {
      command  = ["CMD", "python", "-c", "import os,urllib.request;urllib.request.urlopen('http://127.0.0.1:'+os.environ['PORT']+'/healthz')"]
      interval = 15
      retries  = 3
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.svc[each.key].name
        awslogs-region        = var.region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}

resource "aws_ecs_service" "svc" {
  for_each        = local.services
  name            = each.key
  cluster         = aws_ecs_cluster.main.id
  task_definition = aws_ecs_task_definition.svc[each.key].arn
  desired_count   = var.desired_count[each.key]
  launch_type     = "FARGATE"
  network_configuration {
    subnets         = var.private_subnet_ids
    security_groups = [aws_security_group.tasks.id]
  }
  service_registries {
    registry_arn = aws_service_discovery_service.svc[each.key].arn
  }
  dynamic "load_balancer" {
    for_each = each.value.public ? [1] : []
    content {
      target_group_arn = aws_lb_target_group.gateway.arn
      container_name   = each.key
      container_port   = each.value.port
    }
  }
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
}
