# Account governance for one environment's account: a multi-region CloudTrail with log
# file validation, encrypted with a customer key and streamed to CloudWatch Logs, and an
# AWS Config recorder of every supported resource with a delivery channel and managed
# rules for the controls Protea depends on. Both deliver to one locked-down bucket. It
# must never let the trail or the recorder be edited from the workload (the
# organization's SCPs deny stopping them).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  bucket     = "${var.name}-governance-${local.account_id}"
  bucket_arn = "arn:${local.partition}:s3:::${local.bucket}"
  trail_name = "${var.name}-trail"
  trail_arn  = "arn:${local.partition}:cloudtrail:${data.aws_region.current.name}:${local.account_id}:trail/${local.trail_name}"

  config_rules = {
    "s3-bucket-ssl-requests-only"                      = "S3_BUCKET_SSL_REQUESTS_ONLY"
    "s3-bucket-server-side-encryption-enabled"         = "S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED"
    "s3-bucket-public-read-prohibited"                 = "S3_BUCKET_PUBLIC_READ_PROHIBITED"
    "rds-storage-encrypted"                            = "RDS_STORAGE_ENCRYPTED"
    "rds-cluster-deletion-protection-enabled"          = "RDS_CLUSTER_DELETION_PROTECTION_ENABLED"
    "dynamodb-pitr-enabled"                            = "DYNAMODB_PITR_ENABLED"
    "elasticache-redis-cluster-automatic-backup-check" = "ELASTICACHE_REDIS_CLUSTER_AUTOMATIC_BACKUP_CHECK"
    "cloudtrail-enabled"                               = "CLOUD_TRAIL_ENABLED"
    "cloud-trail-log-file-validation-enabled"          = "CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED"
    "vpc-flow-logs-enabled"                            = "VPC_FLOW_LOGS_ENABLED"
    "cmk-backing-key-rotation-enabled"                 = "CMK_BACKING_KEY_ROTATION_ENABLED"
    "iam-root-access-key-check"                        = "IAM_ROOT_ACCESS_KEY_CHECK"
    "ecs-containers-readonly-access"                   = "ECS_CONTAINERS_READONLY_ACCESS"
    "ecs-task-definition-nonroot-user"                 = "ECS_TASK_DEFINITION_NONROOT_USER"
  }
}

module "bucket" {
  source = "../bucket"

  name               = local.bucket
  kms_key_arn        = var.archive_kms_key_arn
  access_log_bucket  = var.access_log_bucket
  glacier_after_days = var.glacier_after_days
  expire_after_days  = var.expire_after_days

  extra_policy_statements = [
    {
      Sid       = "CloudTrailAclCheck"
      Effect    = "Allow"
      Principal = { Service = "cloudtrail.amazonaws.com" }
      Action    = "s3:GetBucketAcl"
      Resource  = local.bucket_arn
      Condition = { StringEquals = { "aws:SourceArn" = local.trail_arn } }
    },
    {
      Sid       = "CloudTrailWrite"
      Effect    = "Allow"
      Principal = { Service = "cloudtrail.amazonaws.com" }
      Action    = "s3:PutObject"
      Resource  = "${local.bucket_arn}/cloudtrail/AWSLogs/${local.account_id}/*"
      Condition = { StringEquals = { "aws:SourceArn" = local.trail_arn, "s3:x-amz-acl" = "bucket-owner-full-control" } }
    },
    {
      Sid       = "ConfigAclCheck"
      Effect    = "Allow"
      Principal = { Service = "config.amazonaws.com" }
      Action    = ["s3:GetBucketAcl", "s3:ListBucket"]
      Resource  = local.bucket_arn
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    },
    {
      Sid       = "ConfigWrite"
      Effect    = "Allow"
      Principal = { Service = "config.amazonaws.com" }
      Action    = "s3:PutObject"
      Resource  = "${local.bucket_arn}/config/AWSLogs/${local.account_id}/Config/*"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id, "s3:x-amz-acl" = "bucket-owner-full-control" } }
    },
  ]
}

# --- CloudTrail -------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "trail" {
  name              = "/aws/cloudtrail/${var.name}"
  retention_in_days = var.trail_log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_iam_role" "trail" {
  name = "${var.name}-cloudtrail-logs"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "cloudtrail.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy" "trail" {
  name = "write-trail-logs"
  role = aws_iam_role.trail.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
      Resource = "${aws_cloudwatch_log_group.trail.arn}:*"
    }]
  })
}

resource "aws_cloudtrail" "this" {
  #checkov:skip=CKV_AWS_252:Nothing consumes per-file delivery notifications; the trail streams to CloudWatch Logs, where alarms and queries run.
  name                          = local.trail_name
  s3_bucket_name                = module.bucket.id
  s3_key_prefix                 = "cloudtrail"
  is_multi_region_trail         = true
  include_global_service_events = true
  enable_log_file_validation    = true
  kms_key_id                    = var.logs_kms_key_arn
  cloud_watch_logs_group_arn    = "${aws_cloudwatch_log_group.trail.arn}:*"
  cloud_watch_logs_role_arn     = aws_iam_role.trail.arn

  event_selector {
    read_write_type           = "All"
    include_management_events = true

    data_resource {
      type   = "AWS::S3::Object"
      values = ["${module.bucket.arn}/"]
    }
  }
}

# --- AWS Config -------------------------------------------------------------------------

resource "aws_iam_role" "config" {
  name = "${var.name}-aws-config"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "config.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "config" {
  role       = aws_iam_role.config.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AWS_ConfigRole"
}

resource "aws_config_configuration_recorder" "this" {
  name     = var.name
  role_arn = aws_iam_role.config.arn

  recording_group {
    all_supported                 = true
    include_global_resource_types = true
  }
}

resource "aws_config_delivery_channel" "this" {
  name           = var.name
  s3_bucket_name = module.bucket.id
  s3_key_prefix  = "config"
  s3_kms_key_arn = var.archive_kms_key_arn

  snapshot_delivery_properties {
    delivery_frequency = "Six_Hours"
  }

  depends_on = [aws_config_configuration_recorder.this]
}

resource "aws_config_configuration_recorder_status" "this" {
  name       = aws_config_configuration_recorder.this.name
  is_enabled = true

  depends_on = [aws_config_delivery_channel.this]
}

resource "aws_config_config_rule" "managed" {
  for_each = local.config_rules

  name = each.key

  source {
    owner             = "AWS"
    source_identifier = each.value
  }

  depends_on = [aws_config_configuration_recorder.this]
}
