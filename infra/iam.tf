data "aws_iam_policy_document" "ecs_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "read_secrets" {
  statement {
    actions = ["secretsmanager:GetSecretValue"]
    resources = concat(
      [for s in aws_secretsmanager_secret.database_url : s.arn],
      [aws_secretsmanager_secret.service_token.arn, aws_secretsmanager_secret.session_secret.arn],
      [for s in aws_secretsmanager_secret.provider : s.arn]
    )
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.read_secrets.json
}

resource "aws_iam_role" "task" {
  for_each           = local.services
  name               = "${local.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.ecs_assume.json
}

# The gateway keeps uploads and variants under images/; the reward service keeps its
# trained models and labelled images under reward/. No other task touches the bucket.
data "aws_iam_policy_document" "images" {
  statement {
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${aws_s3_bucket.images.arn}/images/*"]
  }
}

resource "aws_iam_role_policy" "gateway_images" {
  role   = aws_iam_role.task["gateway"].id
  policy = data.aws_iam_policy_document.images.json
}

data "aws_iam_policy_document" "reward_blobs" {
  statement {
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.images.arn}/reward/*"]
  }
  # Without ListBucket, S3 answers 403 instead of 404 for a missing key.
  statement {
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.images.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["reward/*"]
    }
  }
}

resource "aws_iam_role_policy" "reward_blobs" {
  role   = aws_iam_role.task["reward"].id
  policy = data.aws_iam_policy_document.reward_blobs.json
}
