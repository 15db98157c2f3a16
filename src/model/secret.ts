// Secret manager settings, stored at `/apisix/secrets/{manager}/{id}` and referenced from other
// resources as `$secret://{manager}/{id}/{key}` (apache/apisix: apisix/secret/{vault,aws,gcp}.lua).
// Like APISIX, these schemas do not forbid extra keys (the stored value also carries `id` and
// timestamps).
import { URI_PATTERN, withHint } from './common.ts';

const commonProperties = {
  id: { type: 'string', description: 'Set by the Admin API to `{manager}/{id}`.' },
  create_time: { type: 'integer', description: 'Creation time, unix seconds (set by the Admin API).' },
  update_time: { type: 'integer', description: 'Last update time, unix seconds (set by the Admin API).' },
} as const;

export const vaultSecretSchema = {
  type: 'object',
  description: 'HashiCorp Vault (KV engine) secret manager.',
  properties: {
    uri: { type: 'string', pattern: URI_PATTERN, description: 'Vault address, `scheme://host[:port]`.' },
    prefix: { type: 'string', description: 'Path prefix of the secrets, e.g. `kv/apisix`.' },
    token: { type: 'string', description: 'Vault token.' },
    namespace: { type: 'string', description: 'Vault Enterprise namespace (sent as `X-Vault-Namespace`).' },
    ...commonProperties,
  },
  required: ['uri', 'prefix', 'token'],
} as const;

export const awsSecretSchema = {
  type: 'object',
  description: 'AWS Secrets Manager.',
  properties: {
    access_key_id: { type: 'string', description: 'AWS access key id.' },
    secret_access_key: { type: 'string', description: 'AWS secret access key.' },
    session_token: { type: 'string', description: 'AWS session token (temporary credentials).' },
    region: { type: 'string', default: 'us-east-1', description: 'AWS region.' },
    endpoint_url: { type: 'string', pattern: URI_PATTERN, description: 'Custom endpoint, `scheme://host[:port]`.' },
    ...commonProperties,
  },
  required: ['access_key_id', 'secret_access_key'],
} as const;

export const gcpSecretSchema = withHint(
  {
    type: 'object',
    description: 'Google Cloud Secret Manager.',
    properties: {
      auth_config: {
        type: 'object',
        description: 'Service-account credentials given inline.',
        properties: {
          client_email: { type: 'string', description: 'Service-account e-mail.' },
          private_key: { type: 'string', description: 'Service-account private key (PEM).' },
          project_id: { type: 'string', description: 'Google Cloud project id.' },
          token_uri: { type: 'string', default: 'https://oauth2.googleapis.com/token', description: 'OAuth2 token endpoint.' },
          scope: {
            type: 'array',
            items: { type: 'string', description: 'OAuth2 scope.' },
            default: ['https://www.googleapis.com/auth/cloud-platform'],
            description: 'OAuth2 scopes requested.',
          },
          entries_uri: { type: 'string', default: 'https://secretmanager.googleapis.com/v1', description: 'Secret Manager API base URI.' },
        },
        required: ['client_email', 'private_key', 'project_id'],
      },
      auth_file: { type: 'string', description: 'Path of a service-account JSON key file.' },
      ssl_verify: { type: 'boolean', default: true, description: 'Verify the TLS certificates of Google endpoints.' },
      ...commonProperties,
    },
    oneOf: [{ required: ['auth_config'] }, { required: ['auth_file'] }],
  } as const,
  'should match only one schema: exactly one of "auth_config" and "auth_file" is required',
);

export const SECRET_MANAGERS = ['vault', 'aws', 'gcp'] as const;
export type SecretManager = (typeof SECRET_MANAGERS)[number];

export const SECRET_SCHEMAS: Record<SecretManager, object> = {
  vault: vaultSecretSchema,
  aws: awsSecretSchema,
  gcp: gcpSecretSchema,
};

export function isSecretManager(name: string): name is SecretManager {
  return (SECRET_MANAGERS as readonly string[]).includes(name);
}

interface SecretBase {
  id?: string;
  create_time?: number;
  update_time?: number;
}

export interface VaultSecret extends SecretBase {
  uri: string;
  prefix: string;
  token: string;
  namespace?: string;
}

export interface AwsSecret extends SecretBase {
  access_key_id: string;
  secret_access_key: string;
  session_token?: string;
  region?: string;
  endpoint_url?: string;
}

export interface GcpSecret extends SecretBase {
  auth_config?: {
    client_email: string;
    private_key: string;
    project_id: string;
    token_uri?: string;
    scope?: string[];
    entries_uri?: string;
  };
  auth_file?: string;
  ssl_verify?: boolean;
}

export type Secret = VaultSecret | AwsSecret | GcpSecret;
