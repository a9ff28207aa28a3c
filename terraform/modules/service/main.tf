# The gateway on ECS Fargate: a cluster with Container Insights, a task of the gateway
# container (non-root uid 10001, read-only root filesystem, configuration from the
# environment and secrets from Secrets Manager) and the AWS Distro for OpenTelemetry
# collector as a sidecar (OTLP/HTTP on 127.0.0.1:4318, traces to X-Ray), a service spread
# over the private-app subnets of three zones behind the ALB (health check /readyz), a
# deployment circuit breaker that rolls back, a stop timeout matched to the gateway's
# drain, target-tracking autoscaling on CPU and requests per target, and task and
# execution roles that reach only this environment's secrets, table and keys. It must
# never give a task a public address, run a container as root, or grant a role more
# than the gateway uses.

data "aws_region" "current" {}

locals {
  region         = data.aws_region.current.name
  container_port = 8080
  # Shutdown is the drain, then the audit writer appends what is queued (at most 10 s,
  # docs/ARCHITECTURE.md "Shutdown"), then the store closes: drain + 10 s + 5 s margin.
  stop_timeout_s  = var.drain_timeout_seconds + 15
  data_dir        = "/var/lib/protea"
  otlp_endpoint   = "http://127.0.0.1:4318"
  storage_url     = "postgres://${var.database_username}@${var.database_host}:${var.database_port}/${var.database_name}?sslmode=require"
  resource_suffix = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.gateway.name}"

  # Every value here is checked by the gateway at start (docs/configuration.md); none is
  # a secret: credentials are named by source (aws-secretsmanager:ARN) or injected below.
  gateway_environment = merge({
    PROTEA_LISTEN                         = "0.0.0.0:${local.container_port}"
    PROTEA_DATA_DIR                       = local.data_dir
    PROTEA_THREADS                        = tostring(var.gateway_threads)
    PROTEA_LOG                            = "info"
    PROTEA_STORAGE                        = local.storage_url
    PROTEA_STORAGE_SECRET                 = "aws-secretsmanager:${var.database_secret_arn}"
    PROTEA_STORAGE_SECRET_REFRESH_SECONDS = "60"
    PROTEA_KEYS_SECRET                    = "aws-secretsmanager:${var.keys_secret_arn}"
    PROTEA_DATABASE_CA_FILE               = var.database_ca_file
    PROTEA_DATABASE_POOL_SIZE_MAX         = tostring(var.database_pool_size_max)
    PROTEA_SESSIONS_TABLE                 = var.sessions_table_name
    PROTEA_TRUSTED_PROXY_HOPS             = tostring(var.trusted_proxy_hops)
    PROTEA_DRAIN_TIMEOUT_SECONDS          = tostring(var.drain_timeout_seconds)
    PROTEA_SERVICE_NAME                   = var.service_name
    PROTEA_CLOUDWATCH_EMF                 = "true"
    PROTEA_OTLP_ENDPOINT                  = local.otlp_endpoint
    AWS_REGION                            = local.region
  }, var.extra_environment)

  # The collector receives OTLP/HTTP on loopback only and sends traces to X-Ray; it
  # scrapes nothing.
  adot_config = yamlencode({
    receivers = {
      otlp = { protocols = { http = { endpoint = "127.0.0.1:4318" } } }
    }
    processors = {
      batch = { timeout = "5s", send_batch_size = 512, send_batch_max_size = 1024 }
    }
    exporters = {
      awsxray = { region = local.region }
    }
    service = {
      pipelines = {
        traces = { receivers = ["otlp"], processors = ["batch"], exporters = ["awsxray"] }
      }
    }
  })
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

# --- IAM --------------------------------------------------------------------------------

resource "aws_iam_role" "execution" {
  name = "${var.name}-task-execution"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

# Pull images, write the two log groups (AWS's managed policy for exactly this).
resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

# Read the one secret ECS injects (PROTEA_REDIS_URL).
resource "aws_iam_role_policy" "execution_secrets" {
  name = "inject-redis-url"
  role = aws_iam_role.execution.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = "secretsmanager:GetSecretValue"
        Resource = var.redis_url_secret_arn
      },
      {
        Effect    = "Allow"
        Action    = "kms:Decrypt"
        Resource  = var.secrets_kms_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${local.region}.amazonaws.com" } }
      },
    ]
  })
}

resource "aws_iam_role" "task" {
  name = "${var.name}-task"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ecs-tasks.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

# What the gateway itself calls: its two secrets, its sessions table.
resource "aws_iam_role_policy" "task_gateway" {
  name = "gateway"
  role = aws_iam_role.task.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadOwnSecrets"
        Effect   = "Allow"
        Action   = "secretsmanager:GetSecretValue"
        Resource = [var.database_secret_arn, var.keys_secret_arn]
      },
      {
        Sid       = "DecryptOwnSecrets"
        Effect    = "Allow"
        Action    = "kms:Decrypt"
        Resource  = var.secrets_kms_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${local.region}.amazonaws.com" } }
      },
      {
        Sid    = "Sessions"
        Effect = "Allow"
        Action = [
          "dynamodb:DescribeTable",
          "dynamodb:DescribeTimeToLive",
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:UpdateItem",
          "dynamodb:Query",
        ]
        Resource = [var.sessions_table_arn, "${var.sessions_table_arn}/index/*"]
      },
      {
        Sid       = "SessionsKey"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey"]
        Resource  = var.data_kms_key_arn
        Condition = { StringEquals = { "kms:ViaService" = "dynamodb.${local.region}.amazonaws.com" } }
      },
    ]
  })
}

# What the ADOT sidecar calls: X-Ray's write API, which has no resource-level permissions.
resource "aws_iam_role_policy" "task_xray" {
  name = "adot-xray"
  role = aws_iam_role.task.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid    = "XRayWrite"
      Effect = "Allow"
      Action = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
      ]
      Resource = "*"
    }]
  })
}

# --- Network ----------------------------------------------------------------------------

resource "aws_security_group" "task" {
  name        = "${var.name}-gateway"
  description = "Gateway tasks: the container port from the ALB; out to AWS APIs, Aurora and Redis"
  vpc_id      = var.vpc_id

  ingress {
    description     = "Gateway port from the ALB"
    from_port       = local.container_port
    to_port         = local.container_port
    protocol        = "tcp"
    security_groups = [var.alb_security_group_id]
  }

  egress {
    description = "HTTPS: VPC endpoints, and public.ecr.aws (the ADOT image) through the zone's NAT gateway"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  egress {
    description     = "HTTPS to S3 (image layers) and DynamoDB (sessions) gateway endpoints"
    from_port       = 443
    to_port         = 443
    protocol        = "tcp"
    prefix_list_ids = [var.s3_prefix_list_id, var.dynamodb_prefix_list_id]
  }

  egress {
    description = "Aurora PostgreSQL inside the VPC"
    from_port   = var.database_port
    to_port     = var.database_port
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr_block]
  }

  egress {
    description = "ElastiCache Redis (TLS) inside the VPC"
    from_port   = 6379
    to_port     = 6379
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr_block]
  }

  tags = { Name = "${var.name}-gateway" }
}

# --- Task and service -------------------------------------------------------------------

resource "aws_ecs_task_definition" "gateway" {
  family                   = "${var.name}-gateway"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory_mib
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # Writable scratch space on the task's ephemeral storage; the root filesystems are
  # read-only.
  volume {
    name = "gateway-data"
  }

  volume {
    name = "adot-tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = "gateway"
      image                  = var.image
      essential              = true
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      privileged             = false
      stopTimeout            = local.stop_timeout_s
      portMappings           = [{ containerPort = local.container_port, protocol = "tcp", name = "http" }]
      environment            = [for key in sort(keys(local.gateway_environment)) : { name = key, value = local.gateway_environment[key] }]
      secrets                = [{ name = "PROTEA_REDIS_URL", valueFrom = var.redis_url_secret_arn }]
      mountPoints            = [{ sourceVolume = "gateway-data", containerPath = local.data_dir, readOnly = false }]
      linuxParameters        = { initProcessEnabled = true, capabilities = { drop = ["ALL"] } }
      ulimits                = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
      dependsOn              = [{ containerName = "adot-collector", condition = "START" }]
      # Liveness, by the binary itself (the image has no shell or curl); the ALB checks
      # readiness (/readyz) on its own.
      healthCheck = {
        command     = ["CMD", "/usr/local/bin/gateway", "healthcheck", "--timeout-seconds", "3"]
        interval    = 10
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = var.gateway_log_group_name
          awslogs-region        = local.region
          awslogs-stream-prefix = "gateway"
          mode                  = "non-blocking"
          max-buffer-size       = "25m"
        }
      }
    },
    {
      name                   = "adot-collector"
      image                  = var.adot_image
      essential              = false
      user                   = "10001:10001"
      readonlyRootFilesystem = true
      privileged             = false
      environment            = [{ name = "AOT_CONFIG_CONTENT", value = local.adot_config }]
      mountPoints            = [{ sourceVolume = "adot-tmp", containerPath = "/tmp", readOnly = false }]
      linuxParameters        = { initProcessEnabled = true, capabilities = { drop = ["ALL"] } }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = var.adot_log_group_name
          awslogs-region        = local.region
          awslogs-stream-prefix = "adot"
        }
      }
    },
  ])
}

resource "aws_ecs_service" "gateway" {
  name                               = "gateway"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.gateway.arn
  desired_count                      = var.desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  health_check_grace_period_seconds  = 60
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  availability_zone_rebalancing      = "ENABLED"

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.task.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = var.target_group_arn
    container_name   = "gateway"
    container_port   = local.container_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  deployment_controller {
    type = "ECS"
  }

  lifecycle {
    ignore_changes = [desired_count]
  }
}

# --- Autoscaling ------------------------------------------------------------------------

resource "aws_appautoscaling_target" "gateway" {
  service_namespace  = "ecs"
  resource_id        = local.resource_suffix
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu-${var.cpu_target_percent}"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway.service_namespace
  resource_id        = aws_appautoscaling_target.gateway.resource_id
  scalable_dimension = aws_appautoscaling_target.gateway.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.name}-requests-per-target"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.gateway.service_namespace
  resource_id        = aws_appautoscaling_target.gateway.resource_id
  scalable_dimension = aws_appautoscaling_target.gateway.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${var.alb_arn_suffix}/${var.target_group_arn_suffix}"
    }
  }
}
