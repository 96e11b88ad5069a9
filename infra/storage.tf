resource "aws_s3_bucket" "images" {
  bucket_prefix = "${local.name}-images-"
}

resource "aws_s3_bucket_public_access_block" "images" {
  bucket                  = aws_s3_bucket.images.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "images" {
  bucket = aws_s3_bucket.images.id
  rule {
    apply_server_side_encryption_by_default { sse_algorithm = "AES256" }
  }
}

resource "random_password" "db" {
  length  = 32
  special = false
}

resource "random_password" "service_token" {
  length  = 48
  special = false
}

resource "random_password" "session_secret" {
  length  = 48
  special = false
}

resource "aws_db_subnet_group" "main" {
  name       = local.name
  subnet_ids = var.private_subnet_ids
}

resource "aws_security_group" "db" {
  name   = "${local.name}-db"
  vpc_id = var.vpc_id
  ingress {
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [aws_security_group.tasks.id]
  }
}

resource "aws_db_instance" "main" {
  identifier                 = local.name
  engine                     = "postgres"
  engine_version             = "15"
  instance_class             = var.db_instance_class
  allocated_storage          = 20
  max_allocated_storage      = 200
  username                   = "afinador"
  password                   = random_password.db.result
  db_subnet_group_name       = aws_db_subnet_group.main.name
  vpc_security_group_ids     = [aws_security_group.db.id]
  storage_encrypted          = true
  backup_retention_period    = 7
  deletion_protection        = true
  skip_final_snapshot        = false
  final_snapshot_identifier  = "${local.name}-final"
  auto_minor_version_upgrade = true
}

# One database URL per service (databases afinador_<service>, created by the
# pre-start migration task's first run; see docs/DEPLOYMENT.md).
resource "aws_secretsmanager_secret" "database_url" {
  for_each = local.services
  name     = "${local.name}/${each.key}/database-url"
}

resource "aws_secretsmanager_secret_version" "database_url" {
  for_each      = local.services
  secret_id     = aws_secretsmanager_secret.database_url[each.key].id
  secret_string = "postgresql+asyncpg://afinador:${random_password.db.result}@${aws_db_instance.main.address}:5432/afinador_${each.key}"
}

resource "aws_secretsmanager_secret" "service_token" {
  name = "${local.name}/service-token"
}

resource "aws_secretsmanager_secret_version" "service_token" {
  secret_id     = aws_secretsmanager_secret.service_token.id
  secret_string = random_password.service_token.result
}

# Signs the gateway's session and CSRF cookies.
resource "aws_secretsmanager_secret" "session_secret" {
  name = "${local.name}/gateway/session-secret"
}

resource "aws_secretsmanager_secret_version" "session_secret" {
  secret_id     = aws_secretsmanager_secret.session_secret.id
  secret_string = random_password.session_secret.result
}

# Provider keys are entered by an operator (aws secretsmanager put-secret-value).
resource "aws_secretsmanager_secret" "provider" {
  for_each = toset(["LEONARDO_API_KEY", "REPLICATE_API_TOKEN", "OPENAI_API_KEY"])
  name     = "${local.name}/${lower(each.key)}"
}
