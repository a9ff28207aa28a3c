# Customer-managed KMS keys, one per purpose, each rotated yearly by KMS, each with a key
# policy that names the AWS services allowed to use it. A key must never be shared across
# purposes (a leaked grant on logs must not open the database), and no key policy may
# grant a wildcard principal.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  root_arn   = "arn:${local.partition}:iam::${local.account_id}:root"

  purposes = {
    data    = "Aurora storage and Performance Insights, DynamoDB sessions, ElastiCache"
    secrets = "Secrets Manager secrets (database credentials, gateway keys, Redis auth)"
    logs    = "CloudWatch Logs groups, SNS alarm topic, CloudTrail"
    archive = "S3 audit archive, exports and governance buckets, ECR images, AWS Config deliveries"
  }

  # Statements every key carries: the account (so IAM policies can grant use) and the
  # named administrators (manage, never use).
  common_statements = concat(
    [{
      Sid       = "AccountIamPolicies"
      Effect    = "Allow"
      Principal = { AWS = local.root_arn }
      Action    = "kms:*"
      Resource  = "*"
    }],
    length(var.key_administrator_arns) == 0 ? [] : [{
      Sid       = "KeyAdministrators"
      Effect    = "Allow"
      Principal = { AWS = var.key_administrator_arns }
      Action = [
        "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*",
        "kms:Update*", "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*",
        "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion",
        "kms:CancelKeyDeletion", "kms:RotateKeyOnDemand",
      ]
      Resource = "*"
    }],
  )

  service_statements = {
    data    = []
    secrets = []
    archive = [
      {
        Sid       = "AwsConfigDelivery"
        Effect    = "Allow"
        Principal = { Service = "config.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
    logs = [
      {
        Sid       = "CloudWatchLogs"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:*" }
        }
      },
      {
        Sid       = "CloudWatchAlarmsToEncryptedSns"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
      {
        Sid       = "CloudTrailEncryptLogs"
        Effect    = "Allow"
        Principal = { Service = "cloudtrail.amazonaws.com" }
        Action    = ["kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          StringLike   = { "kms:EncryptionContext:aws:cloudtrail:arn" = "arn:${local.partition}:cloudtrail:*:${local.account_id}:trail/*" }
        }
      },
    ]
  }
}

resource "aws_kms_key" "this" {
  for_each = local.purposes

  description             = "${var.name}: ${each.value}"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.deletion_window_days

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = concat(local.common_statements, local.service_statements[each.key])
  })
}

resource "aws_kms_alias" "this" {
  for_each = local.purposes

  name          = "alias/${var.name}-${each.key}"
  target_key_id = aws_kms_key.this[each.key].key_id
}
