// Example responses made from a JSON schema, as APISIX's mocking plugin makes them
// (apache/apisix: apisix/plugins/mocking.lua `gen_object` and friends), and the two ways it writes
// them: JSON (cjson) and XML (xml2lua 1.5's `toXml(value, "data")`).
//
// Each property gets a value of its `type`: the `example` when it has one of that type, otherwise a
// random one (1-10 lowercase letters, a number below 10000, an integer 1-10000, a boolean). An
// array gets 1-3 items made from `items`; an object its `properties`. A property without a usable
// type, or an array without `items`, is left out.

export type Generated = string | number | boolean | GeneratedObject | Generated[];
export interface GeneratedObject {
  [key: string]: Generated;
}

type SchemaNode = Record<string, unknown>;

function randomInt(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min + 1));
}

function randomLetters(): string {
  let s = '';
  for (let n = randomInt(1, 10); n > 0; n--) s += String.fromCharCode(randomInt(97, 122));
  return s;
}

/** The type a property asks for, lower-cased as APISIX compares it; the first string of a type list. */
function typeOf(node: SchemaNode): string | undefined {
  const t = node.type;
  if (typeof t === 'string') return t.toLowerCase();
  if (Array.isArray(t)) {
    const first = t.find((x) => typeof x === 'string');
    return typeof first === 'string' ? first.toLowerCase() : undefined;
  }
  return undefined;
}

function isNode(value: unknown): value is SchemaNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function generateObject(node: SchemaNode): GeneratedObject {
  const out: GeneratedObject = {};
  const properties = node.properties;
  if (!isNode(properties)) return out;
  for (const [key, child] of Object.entries(properties)) {
    if (!isNode(child)) continue;
    const value = generateValue(child);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function generateArray(node: SchemaNode): Generated[] | undefined {
  const items = node.items;
  if (!isNode(items)) return undefined;
  const out: Generated[] = [];
  for (let n = randomInt(1, 3); n > 0; n--) {
    const value = generateValue(items);
    if (value !== undefined) out.push(value);
  }
  return out;
}

export function generateValue(node: SchemaNode): Generated | undefined {
  const example = node.example;
  switch (typeOf(node)) {
    case 'array':
      return generateArray(node);
    case 'object':
      return generateObject(node);
    case 'string':
      return typeof example === 'string' ? example : randomLetters();
    case 'number':
      return typeof example === 'number' ? example : Math.random() * 10000;
    case 'integer':
      return typeof example === 'number' ? Math.floor(example) : randomInt(1, 10000);
    case 'boolean':
      return typeof example === 'boolean' ? example : Math.random() < 0.5;
    default:
      return undefined;
  }
}

/**
 * JSON as cjson writes a Lua table: an empty array is an empty table, written `{}`; `/` is not
 * escaped (APISIX turns that off).
 */
export function toJson(value: Generated): string {
  if (Array.isArray(value)) return value.length === 0 ? '{}' : `[${value.map(toJson).join(',')}]`;
  if (typeof value === 'object') {
    const fields = Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`);
    return `{${fields.join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * XML as xml2lua 1.5's `toXml(value, "data")` writes it, layout included: two spaces per level,
 * one element per line, an array as repeated elements named after it, values not escaped.
 */
export function toXml(value: GeneratedObject, rootName = 'data'): string {
  return xmlLevel(value, rootName, 1);
}

function xmlLevel(table: GeneratedObject | Generated[], tableName: string, startLevel: number): string {
  // xml2lua raises `level` for each nested object or array it meets in this table, which shifts the
  // indentation of later siblings' contents; kept for identical output.
  let level = startLevel;
  const spaces = ' '.repeat(level * 2);
  const lines: string[] = tableName !== '' && level === 1 ? [`<${tableName}>`] : [];
  const entries: Array<[string | number, Generated]> = Array.isArray(table) ? table.map((v, i) => [i + 1, v]) : Object.entries(table);
  for (const [key, value] of entries) {
    if (typeof value === 'object') {
      if (typeof key === 'number') {
        // An element of an array of tables: wrapped in the array's name.
        lines.push(`${spaces}<${tableName}>\n${xmlLevel(value, tableName, level + 1)}\n${spaces}</${tableName}>`);
      } else {
        level++;
        if (Array.isArray(value) && value.length > 0) {
          lines.push(xmlLevel(value, key, level));
        } else {
          lines.push(`${spaces}<${key}>\n${xmlLevel(value, key, level + 1)}\n${spaces}</${key}>`);
        }
      }
    } else {
      const name = typeof key === 'number' ? tableName : key;
      lines.push(`${spaces}<${name}>${String(value)}</${name}>`);
    }
  }
  if (tableName !== '' && startLevel === 1) lines.push(`</${tableName}>\n`);
  return lines.join('\n');
}
