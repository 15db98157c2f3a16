// The credential resource: one authentication plugin configuration of a consumer, stored under
// `/apisix/consumers/{username}/credentials/{id}` (apache/apisix: apisix/admin/credentials.lua).
import { createTimeSchema, credentialIdSchema, descSchema, labelsSchema, nameSchema, updateTimeSchema, type Metadata } from './common.ts';

export const credentialSchema = {
  type: 'object',
  description: 'One set of authentication settings of a consumer (a consumer may hold several).',
  properties: {
    id: credentialIdSchema,
    name: nameSchema,
    desc: descSchema,
    labels: labelsSchema,
    plugins: {
      type: 'object',
      maxProperties: 1,
      description: 'Exactly one authentication plugin (type `auth`) and its consumer configuration.',
    },
    create_time: createTimeSchema,
    update_time: updateTimeSchema,
  },
  additionalProperties: false,
} as const;

export interface Credential extends Metadata {
  plugins?: Record<string, unknown>;
}
