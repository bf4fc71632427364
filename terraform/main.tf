# Deploys the gateway from the manifests in ../k8s (the same files `kubectl apply -k k8s/` uses), with the
# image, namespace, replica counts and secrets taken from variables. Order: namespace and Secret, the
# ConfigMap and the in-cluster data stores, the migration Job (waited for), then the API, the workers, their
# autoscaler and disruption budgets. Templates of ../k8s that are not applied here: secret.example.yaml
# (the Secret is built from variables) and prometheus-adapter.yaml (belongs to the monitoring stack).

provider "kubernetes" {
  config_path    = var.kubeconfig_path
  config_context = var.kubeconfig_context
}

locals {
  manifests_dir = var.manifests_dir != null ? var.manifests_dir : "${path.module}/../k8s"

  # The image and namespace the manifests are written with; replaced by var.image and var.namespace.
  manifest_image     = "image: llm-gateway:0.1.0"
  manifest_namespace = "namespace: llm-gateway"

  store_files = concat(var.deploy_redis ? ["redis.yaml"] : [], var.deploy_postgres ? ["postgres.yaml"] : [])
  app_files   = ["api.yaml", "worker.yaml", "hpa-worker.yaml", "pdb.yaml"]
  files       = concat(["configmap.yaml", "migrate-job.yaml"], local.store_files, local.app_files)

  # file -> its documents, decoded (yamldecode reads one document; comment-only parts are skipped).
  documents = {
    for f in local.files : f => [
      for doc in split("\n---\n", replace(replace(file("${local.manifests_dir}/${f}"),
        local.manifest_image, "image: ${var.image}"),
      local.manifest_namespace, "namespace: ${var.namespace}")) :
      yamldecode(doc) if can(yamldecode(doc).kind)
    ]
  }

  config_map    = local.documents["configmap.yaml"][0]
  migrate_job   = local.documents["migrate-job.yaml"][0]
  secret_name   = yamldecode(file("${local.manifests_dir}/secret.example.yaml")).metadata.name
  namespace_doc = yamldecode(file("${local.manifests_dir}/namespace.yaml"))

  stores = {
    for doc in flatten([for f in local.store_files : local.documents[f]]) : "${doc.kind}/${doc.metadata.name}" => doc
  }
  apps = {
    for doc in flatten([for f in local.app_files : local.documents[f]]) : "${doc.kind}/${doc.metadata.name}" => doc
  }
  # The two documents whose numbers come from variables are applied by their own resources below.
  api_deployment_key = "Deployment/llm-gateway-api"
  worker_hpa_key     = "HorizontalPodAutoscaler/llm-gateway-worker"
  other_apps         = { for key, doc in local.apps : key => doc if !contains([local.api_deployment_key, local.worker_hpa_key], key) }

  redis_url = var.redis_url != null ? var.redis_url : "redis://llm-gateway-redis:6379/0"
  database_url = var.database_url != null ? var.database_url : format(
    "postgresql+asyncpg://postgres:%s@llm-gateway-postgres:5432/llm_gateway",
    urlencode(var.postgres_password != null ? var.postgres_password : ""),
  )
}

resource "kubernetes_namespace_v1" "this" {
  count = var.create_namespace ? 1 : 0

  metadata {
    name   = var.namespace
    labels = local.namespace_doc.metadata.labels
  }
}

resource "kubernetes_secret_v1" "gateway" {
  metadata {
    name      = local.secret_name
    namespace = var.namespace
    labels    = { "app.kubernetes.io/name" = "llm-gateway" }
  }

  data = {
    REDIS_URL         = local.redis_url
    DATABASE_URL      = local.database_url
    POSTGRES_PASSWORD = var.postgres_password != null ? var.postgres_password : ""
    SECRET_KEY        = var.secret_key
    ADMIN_API_KEY     = var.admin_api_key
    OPENAI_API_KEY    = var.openai_api_key
    ANTHROPIC_API_KEY = var.anthropic_api_key
  }

  lifecycle {
    precondition {
      condition     = var.redis_url != null || var.deploy_redis
      error_message = "Set redis_url, or deploy_redis = true for the in-cluster Redis."
    }
    precondition {
      condition     = var.database_url != null || (var.deploy_postgres && var.postgres_password != null)
      error_message = "Set database_url, or deploy_postgres = true with postgres_password."
    }
  }

  depends_on = [kubernetes_namespace_v1.this]
}

resource "kubernetes_manifest" "config" {
  manifest = merge(local.config_map, { data = merge(local.config_map.data, var.config) })

  depends_on = [kubernetes_namespace_v1.this]
}

resource "kubernetes_manifest" "stores" {
  for_each = local.stores
  manifest = each.value

  depends_on = [kubernetes_secret_v1.gateway]
}

# A Job's pod template is immutable: a new image replaces the Job, which runs the migrations again
# (they are idempotent) before the Deployments roll.
resource "terraform_data" "release" {
  input = var.image
}

resource "kubernetes_manifest" "migrate" {
  manifest = local.migrate_job

  wait {
    condition {
      type   = "Complete"
      status = "True"
    }
  }

  timeouts {
    create = "15m"
    update = "15m"
  }

  lifecycle {
    replace_triggered_by = [terraform_data.release]
  }

  depends_on = [kubernetes_manifest.config, kubernetes_manifest.stores, kubernetes_secret_v1.gateway]
}

resource "kubernetes_manifest" "api_deployment" {
  manifest = merge(local.apps[local.api_deployment_key], {
    spec = merge(local.apps[local.api_deployment_key].spec, { replicas = var.api_replicas })
  })

  wait {
    rollout = true
  }

  depends_on = [kubernetes_manifest.migrate]
}

resource "kubernetes_manifest" "worker_hpa" {
  manifest = merge(local.apps[local.worker_hpa_key], {
    spec = merge(local.apps[local.worker_hpa_key].spec, {
      minReplicas = var.worker_min_replicas
      maxReplicas = var.worker_max_replicas
    })
  })

  lifecycle {
    precondition {
      condition     = var.worker_min_replicas <= var.worker_max_replicas
      error_message = "worker_min_replicas must not exceed worker_max_replicas."
    }
  }

  depends_on = [kubernetes_manifest.others]
}

resource "kubernetes_manifest" "others" {
  for_each = local.other_apps
  manifest = each.value

  dynamic "wait" {
    for_each = each.value.kind == "Deployment" ? [true] : []
    content {
      rollout = true
    }
  }

  depends_on = [kubernetes_manifest.migrate]
}
