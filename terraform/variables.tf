# ---- cluster ------------------------------------------------------------------------------------------

variable "kubeconfig_path" {
  description = "Path of the kubeconfig file the kubernetes provider uses."
  type        = string
  default     = "~/.kube/config"
}

variable "kubeconfig_context" {
  description = "Context of the kubeconfig to use; null: its current context."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Namespace of every gateway resource (replaces `namespace: llm-gateway` in ../k8s/*.yaml)."
  type        = string
  default     = "llm-gateway"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label: lower-case letters, digits and '-', at most 63 characters."
  }
}

variable "create_namespace" {
  description = "Create the namespace (false: it exists already)."
  type        = bool
  default     = true
}

variable "manifests_dir" {
  description = "Folder of the Kubernetes manifests to apply; null: ../k8s of this repository."
  type        = string
  default     = null
}

# ---- release ------------------------------------------------------------------------------------------

variable "image" {
  description = "Gateway image for the API, the workers and the migration Job, e.g. registry.example.com/llm-gateway:1.2.3."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9_.-]+|@sha256:[0-9a-f]{64})$", var.image))
    error_message = "image must name a tag or a digest (REPOSITORY:TAG or REPOSITORY@sha256:...)."
  }
}

variable "api_replicas" {
  description = "API pods (the Deployment's replicas)."
  type        = number
  default     = 2

  validation {
    condition     = var.api_replicas >= 1
    error_message = "api_replicas must be at least 1."
  }
}

variable "worker_min_replicas" {
  description = "Fewest worker pods the HorizontalPodAutoscaler keeps."
  type        = number
  default     = 2

  validation {
    condition     = var.worker_min_replicas >= 1
    error_message = "worker_min_replicas must be at least 1."
  }
}

variable "worker_max_replicas" {
  description = "Most worker pods the HorizontalPodAutoscaler starts."
  type        = number
  default     = 20
}

variable "config" {
  description = "Extra or overriding gateway settings for the ConfigMap (names as in docs/CONFIGURATION.md), e.g. { LOG_LEVEL = \"DEBUG\" }."
  type        = map(string)
  default     = {}
}

# ---- data stores --------------------------------------------------------------------------------------

variable "deploy_redis" {
  description = "Run the in-cluster Redis of ../k8s/redis.yaml (a template; prefer a managed Redis and set redis_url)."
  type        = bool
  default     = true
}

variable "deploy_postgres" {
  description = "Run the in-cluster PostgreSQL of ../k8s/postgres.yaml (a template; prefer a managed PostgreSQL and set database_url)."
  type        = bool
  default     = true
}

variable "redis_url" {
  description = "REDIS_URL of a managed Redis (redis:// or rediss://); null: the in-cluster one."
  type        = string
  default     = null
  sensitive   = true
}

variable "database_url" {
  description = "DATABASE_URL of a managed PostgreSQL (postgresql+asyncpg://...); null: the in-cluster one."
  type        = string
  default     = null
  sensitive   = true
}

variable "postgres_password" {
  description = "Password of the in-cluster PostgreSQL (needed when deploy_postgres is true)."
  type        = string
  default     = null
  sensitive   = true
}

# ---- secrets ------------------------------------------------------------------------------------------

variable "secret_key" {
  description = "SECRET_KEY: a long random string (production refuses placeholders)."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.secret_key) >= 32
    error_message = "secret_key must be at least 32 characters."
  }
}

variable "admin_api_key" {
  description = "ADMIN_API_KEY for /api/v1/admin/* (required in production)."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.admin_api_key) >= 16
    error_message = "admin_api_key must be at least 16 characters."
  }
}

variable "openai_api_key" {
  description = "OPENAI_API_KEY; empty: no OpenAI."
  type        = string
  default     = ""
  sensitive   = true
}

variable "anthropic_api_key" {
  description = "ANTHROPIC_API_KEY; empty: no Anthropic."
  type        = string
  default     = ""
  sensitive   = true
}
