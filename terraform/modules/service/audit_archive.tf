# The audit trail's archive: an EventBridge Scheduler schedule runs the gateway's own task
# definition once an hour with the command `audit-archive` (docs/configuration.md, host
# commands), which copies every complete, verified chunk of the hash-chained audit trail
# from Aurora to the audit archive bucket (Object Lock in COMPLIANCE mode, versioning,
# SSE-KMS; made by modules/archive). The scheduler's role may only run that task family on
# this cluster and pass its two roles to ECS; the task role gains write, list and read of
# the archive prefix and the archive key through S3, nothing else. This file must never
# grant s3:DeleteObject, s3:PutObjectRetention, s3:BypassGovernanceRetention or any
# permission on another bucket or prefix: an archived chunk is only ever added.
#
# The variables it needs are declared here so that the file can be merged on its own;
# envs/*/main.tf pass them from module.archive and module.kms.

variable "audit_archive_bucket_name" {
  description = "Name of the audit archive bucket (module.archive.audit_archive_bucket)."
  type        = string
}

variable "audit_archive_bucket_arn" {
  description = "ARN of the audit archive bucket (module.archive.audit_archive_bucket_arn)."
  type        = string
}

variable "audit_archive_kms_key_arn" {
  description = "ARN of the customer KMS key the archived objects are encrypted with (module.kms.archive_key_arn)."
  type        = string
}

variable "audit_archive_prefix" {
  description = "Key prefix of the archived chunks in the bucket (no leading or trailing '/')."
  type        = string
  default     = "audit"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.audit_archive_prefix))
    error_message = "audit_archive_prefix must be segments of A-Z, a-z, 0-9, '_', '.' and '-' separated by single '/'."
  }
}

variable "audit_archive_schedule_expression" {
  description = "When the archive runs (EventBridge Scheduler expression, UTC)."
  type        = string
  default     = "rate(1 hour)"
}

variable "audit_archive_chunk_records" {
  description = "Records per archived object (--chunk-records); changing it later starts new key ranges, never rewrites old ones."
  type        = number
  default     = 10000
}

locals {
  audit_archive_prefix_arn = "${var.audit_archive_bucket_arn}/${var.audit_archive_prefix}/*"

  # The task runs the gateway image (ENTRYPOINT /usr/local/bin/gateway) with the command
  # `audit-archive`; storage, keys and region come from the task definition's environment.
  audit_archive_overrides = {
    containerOverrides = [{
      name    = "gateway"
      command = ["audit-archive"]
      environment = [
        { name = "PROTEA_AUDIT_ARCHIVE_BUCKET", value = var.audit_archive_bucket_name },
        { name = "PROTEA_AUDIT_ARCHIVE_PREFIX", value = var.audit_archive_prefix },
        { name = "PROTEA_AUDIT_ARCHIVE_KMS_KEY_ID", value = var.audit_archive_kms_key_arn },
        { name = "PROTEA_AUDIT_ARCHIVE_CHUNK_RECORDS", value = tostring(var.audit_archive_chunk_records) },
      ]
    }]
  }
}

# --- The task role: add chunks under the prefix, nothing else -------------------------

resource "aws_iam_role_policy" "task_audit_archive" {
  name = "audit-archive"
  role = aws_iam_role.task.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ListArchivePrefix"
        Effect   = "Allow"
        Action   = "s3:ListBucket"
        Resource = var.audit_archive_bucket_arn
        Condition = {
          StringLike = { "s3:prefix" = ["${var.audit_archive_prefix}/", "${var.audit_archive_prefix}/*"] }
        }
      },
      {
        # GetObject is what HeadObject (the last archived chunk's last-hash) needs.
        Sid      = "AddAndReadArchivedChunks"
        Effect   = "Allow"
        Action   = ["s3:PutObject", "s3:GetObject"]
        Resource = local.audit_archive_prefix_arn
      },
      {
        Sid       = "ArchiveKeyThroughS3"
        Effect    = "Allow"
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = var.audit_archive_kms_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "s3.${local.region}.amazonaws.com" } }
      },
    ]
  })
}

# --- The scheduler's role: run this task family on this cluster ------------------------

data "aws_caller_identity" "audit_archive" {}

resource "aws_iam_role" "audit_archive_scheduler" {
  name = "${var.name}-audit-archive-scheduler"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "scheduler.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.audit_archive.account_id } }
    }]
  })
}

resource "aws_iam_role_policy" "audit_archive_scheduler" {
  name = "run-audit-archive"
  role = aws_iam_role.audit_archive_scheduler.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "RunGatewayTask"
        Effect    = "Allow"
        Action    = "ecs:RunTask"
        Resource  = ["${aws_ecs_task_definition.gateway.arn_without_revision}:*"]
        Condition = { ArnEquals = { "ecs:cluster" = aws_ecs_cluster.this.arn } }
      },
      {
        Sid       = "PassTaskRoles"
        Effect    = "Allow"
        Action    = "iam:PassRole"
        Resource  = [aws_iam_role.task.arn, aws_iam_role.execution.arn]
        Condition = { StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" } }
      },
    ]
  })
}

# --- The schedule -----------------------------------------------------------------------

resource "aws_scheduler_schedule" "audit_archive" {
  name        = "${var.name}-audit-archive"
  description = "Archive the audit trail's complete chunks to the Object Lock bucket (gateway audit-archive)"
  state       = "ENABLED"

  schedule_expression          = var.audit_archive_schedule_expression
  schedule_expression_timezone = "UTC"
  kms_key_arn                  = var.audit_archive_kms_key_arn

  flexible_time_window {
    mode                      = "FLEXIBLE"
    maximum_window_in_minutes = 10
  }

  target {
    arn      = aws_ecs_cluster.this.arn
    role_arn = aws_iam_role.audit_archive_scheduler.arn
    input    = jsonencode(local.audit_archive_overrides)

    ecs_parameters {
      # The latest ACTIVE revision: a deployment's new image archives too.
      task_definition_arn     = aws_ecs_task_definition.gateway.arn_without_revision
      launch_type             = "FARGATE"
      platform_version        = "LATEST"
      task_count              = 1
      enable_ecs_managed_tags = true
      propagate_tags          = "TASK_DEFINITION"

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = [aws_security_group.task.id]
        assign_public_ip = false
      }
    }

    # A missed run is caught up by the next one (each run archives everything due), so
    # a few retries within the hour are enough.
    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }
  }
}

output "audit_archive_schedule_arn" {
  description = "ARN of the hourly audit-archive schedule."
  value       = aws_scheduler_schedule.audit_archive.arn
}
