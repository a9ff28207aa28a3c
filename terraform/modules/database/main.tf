# Aurora PostgreSQL 15 for the ledger: a writer and readers spread over the zones,
# storage and Performance Insights encrypted with a customer key, IAM database
# authentication enabled (for people; the gateway uses its rotated password secret),
# continuous backups with point-in-time recovery, TLS forced by the cluster parameter
# group, enhanced monitoring, and the PostgreSQL log exported to CloudWatch. It must
# never be publicly accessible or accept a connection without TLS.

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_security_group" "database" {
  name        = "${var.name}-aurora"
  description = "Aurora PostgreSQL: 5432 from the gateway tasks and the rotation lambda only"
  vpc_id      = var.vpc_id

  tags = { Name = "${var.name}-aurora" }
}

resource "aws_vpc_security_group_ingress_rule" "database" {
  for_each = var.client_security_group_ids

  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from a client security group"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = each.value
}

resource "aws_rds_cluster_parameter_group" "this" {
  name        = "${var.name}-aurora-postgresql15"
  family      = "aurora-postgresql15"
  description = "Protea: TLS only, DDL and slow statements logged"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "ssl_min_protocol_version"
    value = "TLSv1.2"
  }

  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  parameter {
    name  = "log_disconnections"
    value = "1"
  }
}

resource "aws_cloudwatch_log_group" "postgresql" {
  # The name RDS writes to; created here so that retention and encryption are ours.
  name              = "/aws/rds/cluster/${var.name}/postgresql"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
}

resource "aws_rds_cluster" "this" {
  #checkov:skip=CKV2_AWS_8:Backups are Aurora's continuous backups with point-in-time recovery over backup_retention_days (docs/ha_backup.md); AWS Backup would add a second copy of the same data in the same region, which POPIA residency allows but the RPO does not need.
  cluster_identifier                  = var.name
  engine                              = "aurora-postgresql"
  engine_version                      = var.engine_version
  database_name                       = var.database_name
  master_username                     = var.master_username
  manage_master_user_password         = true
  master_user_secret_kms_key_id       = var.secrets_kms_key_arn
  iam_database_authentication_enabled = true
  storage_encrypted                   = true
  kms_key_id                          = var.kms_key_arn
  db_subnet_group_name                = aws_db_subnet_group.this.name
  vpc_security_group_ids              = [aws_security_group.database.id]
  db_cluster_parameter_group_name     = aws_rds_cluster_parameter_group.this.name
  availability_zones                  = var.availability_zones
  backup_retention_period             = var.backup_retention_days
  preferred_backup_window             = "00:00-01:00"
  preferred_maintenance_window        = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = var.skip_final_snapshot
  final_snapshot_identifier           = "${var.name}-final"
  enabled_cloudwatch_logs_exports     = ["postgresql"]

  lifecycle {
    ignore_changes = [availability_zones]
  }

  depends_on = [aws_cloudwatch_log_group.postgresql]
}

resource "aws_iam_role" "monitoring" {
  name = "${var.name}-rds-monitoring"

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "monitoring" {
  role       = aws_iam_role.monitoring.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_rds_cluster_instance" "this" {
  count = var.instance_count

  identifier                            = "${var.name}-${count.index}"
  cluster_identifier                    = aws_rds_cluster.this.id
  engine                                = aws_rds_cluster.this.engine
  engine_version                        = aws_rds_cluster.this.engine_version
  instance_class                        = var.instance_class
  availability_zone                     = var.availability_zones[count.index % length(var.availability_zones)]
  publicly_accessible                   = false
  auto_minor_version_upgrade            = true
  monitoring_interval                   = 30
  monitoring_role_arn                   = aws_iam_role.monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  performance_insights_retention_period = var.performance_insights_retention_days
  promotion_tier                        = count.index
  copy_tags_to_snapshot                 = true
}
