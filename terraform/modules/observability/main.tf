# CloudWatch for one environment: the gateway's and collector's log groups (KMS,
# retention; the gateway's JSON logs carry its embedded-metric-format lines, which
# CloudWatch turns into the Protea namespace metrics), an SNS topic encrypted with a
# customer key, a dashboard with p50/p99/p99.9 per route next to the ALB, ECS, Aurora and
# Redis metrics, and alarms to SNS. It must never put personal information or secrets in
# a metric, an alarm or a dashboard.

data "aws_region" "current" {}

locals {
  region    = data.aws_region.current.name
  namespace = "Protea"
  service   = ["Service", var.service_name]

  latency_per_route = [for route in var.routes : [local.namespace, "RequestLatency", "Service", var.service_name, "Route", route, { stat = "p99", label = "p99 ${route}" }]]
}

resource "aws_cloudwatch_log_group" "gateway" {
  name              = "/ecs/${var.name}/gateway"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_cloudwatch_log_group" "adot" {
  name              = "/ecs/${var.name}/adot-collector"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = var.logs_kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_emails)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name

  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "Request latency (gateway, ms)"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            [local.namespace, "RequestLatency", local.service[0], local.service[1], { stat = "p50", label = "p50" }],
            ["...", { stat = "p99", label = "p99" }],
            ["...", { stat = "p99.9", label = "p99.9" }],
          ]
          annotations = { horizontal = [{ label = "p99 SLO", value = var.latency_p99_slo_ms }] }
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title   = "p99 latency by route (ms)"
          region  = local.region
          view    = "timeSeries"
          period  = 60
          metrics = local.latency_per_route
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Requests and errors"
          region = local.region
          view   = "timeSeries"
          stat   = "Sum"
          period = 60
          metrics = [
            [local.namespace, "Requests", local.service[0], local.service[1]],
            [".", "Errors5xx", ".", "."],
            [".", "Errors4xx", ".", "."],
            [".", "RateLimited", ".", "."],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "ALB: target response time and unhealthy hosts"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            ["AWS/ApplicationELB", "TargetResponseTime", "LoadBalancer", var.alb_arn_suffix, { stat = "p99", label = "TargetResponseTime p99 (s)" }],
            [".", "HTTPCode_Target_5XX_Count", ".", ".", { stat = "Sum", yAxis = "right" }],
            [".", "UnHealthyHostCount", "TargetGroup", var.target_group_arn_suffix, "LoadBalancer", var.alb_arn_suffix, { stat = "Maximum", yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 8, height = 6
        properties = {
          title  = "Batches: flush latency (ms) and size"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            [local.namespace, "FlushLatency", local.service[0], local.service[1], { stat = "p99", label = "flush p99" }],
            ["...", { stat = "p50", label = "flush p50" }],
            [".", "BatchSize", ".", ".", { stat = "Average", yAxis = "right", label = "batch size (avg)" }],
          ]
        }
      },
      {
        type = "metric", x = 8, y = 12, width = 8, height = 6
        properties = {
          title  = "Queues"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Maximum"
          metrics = [
            [local.namespace, "QueueDepth", local.service[0], local.service[1]],
            [".", "AuditQueueDepth", ".", "."],
            [".", "AuditChainBroken", ".", ".", { yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 16, y = 12, width = 8, height = 6
        properties = {
          title  = "ECS service: CPU and memory (%)"
          region = local.region
          view   = "timeSeries"
          period = 60
          stat   = "Average"
          metrics = [
            ["AWS/ECS", "CPUUtilization", "ClusterName", var.ecs_cluster_name, "ServiceName", var.ecs_service_name],
            [".", "MemoryUtilization", ".", ".", ".", "."],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 18, width = 12, height = 6
        properties = {
          title  = "Aurora"
          region = local.region
          view   = "timeSeries"
          period = 60
          metrics = [
            ["AWS/RDS", "CPUUtilization", "DBClusterIdentifier", var.aurora_cluster_identifier, { stat = "Maximum" }],
            [".", "DatabaseConnections", ".", ".", { stat = "Sum", yAxis = "right" }],
            [".", "AuroraReplicaLagMaximum", ".", ".", { stat = "Maximum", yAxis = "right" }],
            [".", "CommitLatency", ".", ".", { stat = "Average", yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 18, width = 12, height = 6
        properties = {
          title   = "Redis"
          region  = local.region
          view    = "timeSeries"
          period  = 60
          stat    = "Maximum"
          metrics = flatten([for node in var.redis_member_clusters : [["AWS/ElastiCache", "EngineCPUUtilization", "CacheClusterId", node], [".", "DatabaseMemoryUsagePercentage", ".", "."], [".", "Evictions", ".", ".", { stat = "Sum", yAxis = "right" }]]])
        }
      },
    ]
  })
}

# --- Alarms -----------------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "latency_p99" {
  alarm_name          = "${var.name}-latency-p99-over-slo"
  alarm_description   = "Gateway p99 request latency above ${var.latency_p99_slo_ms} ms for 5 of 5 minutes. Runbook: docs/runbooks.md#latency"
  namespace           = local.namespace
  metric_name         = "RequestLatency"
  dimensions          = { Service = var.service_name }
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  threshold           = var.latency_p99_slo_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "error_rate" {
  alarm_name          = "${var.name}-5xx-rate"
  alarm_description   = "Gateway 5xx responses above ${var.error_rate_slo_percent}% of requests for 5 of 5 minutes. Runbook: docs/runbooks.md#errors"
  evaluation_periods  = 5
  datapoints_to_alarm = 5
  threshold           = var.error_rate_slo_percent
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * errors / requests, 0)"
    label       = "5xx %"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = local.namespace
      metric_name = "Errors5xx"
      dimensions  = { Service = var.service_name }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = local.namespace
      metric_name = "Requests"
      dimensions  = { Service = var.service_name }
      period      = 60
      stat        = "Sum"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "alb_5xx" {
  alarm_name          = "${var.name}-alb-target-5xx"
  alarm_description   = "ALB counted more than 50 target 5xx responses a minute for 3 minutes (covers a gateway too broken to emit metrics)."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HTTPCode_Target_5XX_Count"
  dimensions          = { LoadBalancer = var.alb_arn_suffix }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 50
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  alarm_name          = "${var.name}-unhealthy-targets"
  alarm_description   = "At least one gateway task failed the /readyz health check for 3 minutes. Runbook: docs/runbooks.md#readiness"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = { LoadBalancer = var.alb_arn_suffix, TargetGroup = var.target_group_arn_suffix }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "audit_chain_broken" {
  alarm_name          = "${var.name}-audit-chain-broken"
  alarm_description   = "The background verification of the audit trail found a broken hash chain: possible tampering. Runbook: docs/runbooks.md (POPIA breach)."
  namespace           = local.namespace
  metric_name         = "AuditChainBroken"
  dimensions          = { Service = var.service_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "aurora_cpu" {
  alarm_name          = "${var.name}-aurora-cpu"
  alarm_description   = "An Aurora instance above 80% CPU for 10 minutes."
  namespace           = "AWS/RDS"
  metric_name         = "CPUUtilization"
  dimensions          = { DBClusterIdentifier = var.aurora_cluster_identifier }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 10
  threshold           = 80
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "aurora_freeable_memory" {
  alarm_name          = "${var.name}-aurora-freeable-memory"
  alarm_description   = "An Aurora instance's freeable memory under ${var.aurora_freeable_memory_bytes_min} bytes for 10 minutes."
  namespace           = "AWS/RDS"
  metric_name         = "FreeableMemory"
  dimensions          = { DBClusterIdentifier = var.aurora_cluster_identifier }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 10
  threshold           = var.aurora_freeable_memory_bytes_min
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "aurora_replica_lag" {
  alarm_name          = "${var.name}-aurora-replica-lag"
  alarm_description   = "Aurora replica lag above 1 s for 5 minutes: a failover now could take longer."
  namespace           = "AWS/RDS"
  metric_name         = "AuroraReplicaLagMaximum"
  dimensions          = { DBClusterIdentifier = var.aurora_cluster_identifier }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 1000
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "redis_cpu" {
  for_each = toset(var.redis_member_clusters)

  alarm_name          = "${var.name}-redis-cpu-${each.value}"
  alarm_description   = "Redis engine CPU above 80% for 10 minutes on ${each.value}."
  namespace           = "AWS/ElastiCache"
  metric_name         = "EngineCPUUtilization"
  dimensions          = { CacheClusterId = each.value }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 10
  threshold           = 80
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "redis_memory" {
  for_each = toset(var.redis_member_clusters)

  alarm_name          = "${var.name}-redis-memory-${each.value}"
  alarm_description   = "Redis memory use above 80% for 10 minutes on ${each.value}."
  namespace           = "AWS/ElastiCache"
  metric_name         = "DatabaseMemoryUsagePercentage"
  dimensions          = { CacheClusterId = each.value }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 10
  threshold           = 80
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "redis_evictions" {
  for_each = toset(var.redis_member_clusters)

  alarm_name          = "${var.name}-redis-evictions-${each.value}"
  alarm_description   = "Redis evicted keys on ${each.value}: rate-limit state or cached sessions are being dropped."
  namespace           = "AWS/ElastiCache"
  metric_name         = "Evictions"
  dimensions          = { CacheClusterId = each.value }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
