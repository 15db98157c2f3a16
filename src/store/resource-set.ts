// A validated set of resources by kind and id, and the change events between two sets.
import { isDeepStrictEqual } from 'node:util';
import { SERVED_KINDS, type ChangeEvent, type ServedKind } from '../model/index.ts';

export type ResourceSet = Record<ServedKind, Map<string, object>>;

export function emptyResourceSet(): ResourceSet {
  return Object.fromEntries(SERVED_KINDS.map((k) => [k, new Map()])) as ResourceSet;
}

/** Events that turn `prev` into `next`; unchanged items produce none. */
export function diffResourceSets(prev: ResourceSet, next: ResourceSet): ChangeEvent[] {
  const events: ChangeEvent[] = [];
  for (const kind of SERVED_KINDS) {
    const before = prev[kind];
    const after = next[kind];
    for (const [id, value] of after) {
      const old = before.get(id);
      if (!old || !isDeepStrictEqual(old, value)) events.push({ kind, id, value });
    }
    for (const id of before.keys()) if (!after.has(id)) events.push({ kind, id, value: undefined });
  }
  return events;
}

/** Every resource of a set as creation events (a worker's initial load). */
export function resourceSetEvents(set: ResourceSet): ChangeEvent[] {
  return diffResourceSets(emptyResourceSet(), set);
}
