// The proto resource: protobuf definitions used by grpc-transcode (`proto_id`).
import { createTimeSchema, descSchema, idSchema, labelsSchema, nameSchema, updateTimeSchema, type Metadata } from './common.ts';

export const protoSchema = {
  type: 'object',
  description: 'Protobuf definitions referenced by plugins such as grpc-transcode.',
  properties: {
    id: idSchema,
    name: nameSchema,
    desc: descSchema,
    labels: labelsSchema,
    content: {
      type: 'string',
      minLength: 1,
      maxLength: 1048576,
      description: '.proto source, or a base64-encoded compiled descriptor set (1 byte to 1 MiB).',
    },
    create_time: createTimeSchema,
    update_time: updateTimeSchema,
  },
  required: ['content'],
  additionalProperties: false,
} as const;

export interface Proto extends Metadata {
  content: string;
}
