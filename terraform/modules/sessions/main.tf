# The DynamoDB table of operator sessions, in exactly the shape the gateway's
# `storage::sessions::dynamo` creates for local stacks: hash key `session_id` (S), index
# `by_operator` on `operator_id` (keys only), TTL on `expires_at`, on-demand capacity.
# Encrypted with a customer key, with point-in-time recovery. It must never hold anything
# but session records (no personal information beyond an operator id).

resource "aws_dynamodb_table" "sessions" {
  name                        = var.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "session_id"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "session_id"
    type = "S"
  }

  attribute {
    name = "operator_id"
    type = "S"
  }

  global_secondary_index {
    name            = "by_operator"
    hash_key        = "operator_id"
    projection_type = "KEYS_ONLY"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}
