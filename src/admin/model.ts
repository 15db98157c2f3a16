// The Admin API's view of src/model. The model knows credentials as kind `consumers` with id
// `{username}/credentials/{id}` and secrets as `secrets` with id `{manager}/{id}`; the Admin API
// addresses credentials as their own resource, so the mapping lives here.
import { isAdminKind, SCHEMA_NAMES, validateAdminResource, validateAdminSchema, type AdminKind } from '../model/index.ts';

/** The model's (kind, id) for an Admin API resource; `parent` is a credential's username. */
function modelRef(res: string, id: string | undefined, parent: string | undefined): { kind: AdminKind; id: string | undefined } | undefined {
  if (res === 'credentials') return { kind: 'consumers', id: `${parent ?? ''}/credentials/${id ?? ''}` };
  return isAdminKind(res) ? { kind: res, id } : undefined;
}

/** True when the model validates this kind (plural URL name). */
export function modelHasKind(res: string): boolean {
  return res === 'credentials' || isAdminKind(res);
}

/** Schema and self-contained checks of one resource; APISIX-style text, or undefined when valid. */
export function validateWithModel(res: string, id: string | undefined, value: unknown, parent?: string): string | undefined {
  const ref = modelRef(res, id, parent);
  if (!ref) return undefined;
  return validateAdminResource(ref.kind, ref.id, value);
}

/** Schema only (`POST /schema/validate/{resource}`). */
export function validateSchemaOnly(res: string, id: string | undefined, value: unknown): string | undefined {
  const ref = modelRef(res, id, 'x');
  if (!ref) return undefined;
  return validateAdminSchema(ref.kind, ref.id, value);
}

/** The core schema served at `GET /schema/{name}` (`route`, `consumer_group`, `plugins`, ...). */
export function coreSchema(name: string): object | undefined {
  return Object.hasOwn(SCHEMA_NAMES, name) ? SCHEMA_NAMES[name] : undefined;
}
