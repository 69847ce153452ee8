import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { configSchema, type Config, type ConfigInput } from './schema.js';

// Loaded only when there is a file to read: the YAML library costs ~100 ms of CPU at every start, most of which run
// on environment variables alone (a restarted server should open its port as soon as it can).
const requireModule = createRequire(import.meta.url);
const yaml = (): typeof import('yaml') => requireModule('yaml') as typeof import('yaml');

/**
 * Builds the one Config object. Precedence, lowest first:
 *   schema defaults < YAML file (options.file, else PARLEY_CONFIG) < PARLEY_* environment variables < overrides (flags).
 *
 * Environment variable names are derived from the schema: every leaf `a.bCd.e` is `PARLEY_A_B_CD_E`. Values are coerced
 * to the leaf's type (numbers; booleans as true/false/1/0; enums and strings as given). An empty variable counts as
 * unset. `null` in YAML (e.g. `jwt:` with nothing under it) also counts as unset.
 *
 * Every mistake (unknown YAML key, unknown PARLEY_* variable, bad value) is collected and thrown together as one
 * ConfigError, one line per mistake: `path: problem (from <source>)`. Secret values are never echoed.
 */

/** Config input as the caller can give it: any part of the config, leaves as their type or (for flags) as strings. */
export type ConfigOverrides = DeepPartial<ConfigInput>;
type DeepPartial<T> = T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T | string;

export interface LoadConfigOptions {
  /** YAML file; when absent, PARLEY_CONFIG from `env` is used; when both are absent, no file. */
  file?: string;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Highest precedence, usually from CLI flags. Undefined leaves are ignored; strings are coerced like env values. */
  overrides?: ConfigOverrides;
  /** How to name an override in error messages, by dotted path (e.g. `{'server.port': '--port'}`). @default 'command line' */
  overrideSources?: Record<string, string>;
  /** How to name where `file` came from in error messages. @default 'options.file' or 'PARLEY_CONFIG' */
  fileSource?: string;
}

export interface ConfigProblem {
  /** Dotted config path, or the environment variable / file name the problem is about. */
  path: string;
  problem: string;
  /** Where the bad value came from: a file name, an environment variable, a flag, 'default'. */
  source: string;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    const lines = problems.map((p) => `${p.path}: ${p.problem} (from ${p.source})`);
    super(`Invalid configuration:\n${lines.join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Environment variables starting with PARLEY_ that are not config leaves but are still allowed. */
export const reservedEnvironmentVariables: ReadonlySet<string> = new Set(['PARLEY_CONFIG']);

const ENV_PREFIX = 'PARLEY_';

// ---------------------------------------------------------------------------------------------- schema walking (zod 4)

type AnySchema = { _zod: { def: any }; description?: string; [k: string]: any };
type LeafKind = 'number' | 'boolean' | 'enum' | 'string' | 'list';

interface Leaf {
  path: string[];
  dotted: string;
  envName: string;
  kind: LeafKind;
  schema: AnySchema;
  defaultValue?: unknown;
  description?: string;
}

const WRAPPERS = new Set(['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch', 'nonoptional']);

/** Strip defaults/optionals; returns the inner schema plus the first default and description met on the way. */
function unwrap(schema: AnySchema): { schema: AnySchema; defaultValue?: unknown; description?: string } {
  let s = schema;
  let defaultValue: unknown;
  let description: string | undefined = s.description;
  for (;;) {
    const def = s._zod.def;
    if (def.type === 'default' && defaultValue === undefined) {
      defaultValue = typeof def.defaultValue === 'function' ? def.defaultValue() : def.defaultValue;
    }
    if (WRAPPERS.has(def.type)) s = def.innerType;
    else if (def.type === 'pipe') s = def.in;
    else break;
    description ??= s.description;
  }
  return { schema: s, defaultValue, description };
}

function shapeOf(schema: AnySchema): Record<string, AnySchema> | undefined {
  return schema._zod.def.type === 'object' ? (schema._zod.def.shape as Record<string, AnySchema>) : undefined;
}

function envSegment(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/([A-Z])([A-Z][a-z])/g, '$1_$2').toUpperCase();
}

function collectLeaves(schema: AnySchema, path: string[], out: Leaf[]): void {
  const { schema: inner, defaultValue, description } = unwrap(schema);
  const shape = shapeOf(inner);
  if (shape) {
    for (const [key, child] of Object.entries(shape)) collectLeaves(child, [...path, key], out);
    return;
  }
  const t = inner._zod.def.type;
  const kind: LeafKind | undefined = t === 'number' || t === 'boolean' || t === 'enum' || t === 'string' ? t : t === 'array' ? 'list' : undefined;
  if (!kind) throw new Error(`config schema: unsupported type "${t}" at ${path.join('.')}`);
  out.push({
    path,
    dotted: path.join('.'),
    envName: ENV_PREFIX + path.map(envSegment).join('_'),
    kind,
    schema: inner,
    defaultValue,
    description,
  });
}

let leafCache: { list: Leaf[]; byEnv: Map<string, Leaf>; byPath: Map<string, Leaf> } | undefined;
function leaves() {
  if (!leafCache) {
    const list: Leaf[] = [];
    collectLeaves(configSchema as unknown as AnySchema, [], list);
    const byEnv = new Map<string, Leaf>();
    for (const leaf of list) {
      const clash = byEnv.get(leaf.envName);
      if (clash) throw new Error(`config schema: ${leaf.dotted} and ${clash.dotted} both map to ${leaf.envName}`);
      byEnv.set(leaf.envName, leaf);
    }
    leafCache = { list, byEnv, byPath: new Map(list.map((l) => [l.dotted, l])) };
  }
  return leafCache;
}

/** The unwrapped schema node at a path, or undefined when the path leaves the schema. */
function schemaAt(path: readonly PropertyKey[]): AnySchema | undefined {
  let node: AnySchema | undefined = unwrap(configSchema as unknown as AnySchema).schema;
  for (const key of path) {
    const shape: Record<string, AnySchema> | undefined = node && shapeOf(node);
    // A list's items (an issue about the second origin has the path [..., 'origins', 1]).
    const child: AnySchema | undefined = node?._zod.def.type === 'array' ? node._zod.def.element : shape?.[String(key)];
    if (!child) return undefined;
    node = unwrap(child).schema;
  }
  return node;
}

let defaultsCache: unknown;
/** The config with nothing set (defaults of nested objects included). */
function schemaDefaults(): unknown {
  defaultsCache ??= configSchema.parse({});
  return defaultsCache;
}

/** Bounds that depend on other settings (checked in the schema's superRefine), told in `--help` beside the type. */
const CROSS_RULES: Record<string, string> = {
  'limits.maxOutgoingTotalBytes': 'and at least twice the reply budget (limits.maxReplyBytes, at most half of limits.maxOutgoingBytes)',
  'limits.maxOutgoingHardBytes': 'and at least twice limits.maxOutgoingBytes',
  'limits.maxOutgoingBytes': 'and at least twice the largest event one message makes (6 × limits.maxMessageBytes + limits.maxMetaBytes + 2048)',
  'limits.outgoingProbeBytes': 'and at most half of limits.maxOutgoingBytes',
};

const DERIVED_DEFAULTS: Record<string, string> = {
  'store.sqlite.path': '<dataDir>/parley.db',
  'server.instanceId': '<host name>-<pid>',
  'server.publicUrl': 'derived from server.host and server.port',
  'auth.accounts.secret': 'generated once and kept in <dataDir>/secret',
  'limits.outgoingProbeBytes': '131072, or a quarter of limits.maxOutgoingBytes if less',
};

export interface EnvironmentVariableInfo {
  name: string;
  /** Dotted config path. */
  path: string;
  description?: string;
  /** What the value must be, e.g. 'a number between 0 and 65535'. */
  type: string;
  /** The default, as text; absent when there is none. */
  default?: string;
}

/** Every PARLEY_* variable the config understands, in schema order (for `parley serve --help` and the docs). */
export function describeEnvironmentVariables(): EnvironmentVariableInfo[] {
  return leaves().list.map((leaf) => {
    const rule = CROSS_RULES[leaf.dotted];
    const info: EnvironmentVariableInfo = { name: leaf.envName, path: leaf.dotted, type: expected(leaf.schema) + (rule ? `, ${rule}` : '') };
    if (leaf.description) info.description = leaf.description;
    // The effective default: a section's own default (e.g. connectionRate's 50/s) wins over its inner schema's (10/s).
    const fallback = getAt(schemaDefaults(), leaf.path) ?? leaf.defaultValue;
    if (Array.isArray(fallback)) info.default = fallback.length ? fallback.join(',') : 'none';
    else if (fallback !== undefined) info.default = String(fallback);
    else if (DERIVED_DEFAULTS[leaf.dotted]) info.default = DERIVED_DEFAULTS[leaf.dotted];
    return info;
  });
}

// --------------------------------------------------------------------------------------------------- describing values

interface NumberRange { min?: number; minInclusive: boolean; max?: number; maxInclusive: boolean; int: boolean }

function numberRange(schema: AnySchema): NumberRange {
  const r: NumberRange = { minInclusive: true, maxInclusive: true, int: false };
  for (const check of (schema._zod.def.checks ?? []) as AnySchema[]) {
    const d = check._zod.def;
    if (d.check === 'number_format' && (d.format === 'safeint' || d.format === 'int32' || d.format === 'uint32')) r.int = true;
    else if (d.check === 'greater_than' && (r.min === undefined || d.value >= r.min)) { r.min = d.value; r.minInclusive = d.inclusive; }
    else if (d.check === 'less_than' && (r.max === undefined || d.value <= r.max)) { r.max = d.value; r.maxInclusive = d.inclusive; }
  }
  return r;
}

function stringLength(schema: AnySchema): { min?: number; max?: number } {
  const r: { min?: number; max?: number } = {};
  for (const check of (schema._zod.def.checks ?? []) as AnySchema[]) {
    const d = check._zod.def;
    if (d.check === 'min_length') r.min = d.minimum;
    else if (d.check === 'max_length') r.max = d.maximum;
  }
  return r;
}

/** What a leaf expects, phrased for "expected …". */
function expected(schema: AnySchema | undefined, value?: unknown): string {
  if (!schema) return 'nothing here';
  const def = schema._zod.def;
  switch (def.type) {
    case 'number': {
      const r = numberRange(schema);
      // Said of every whole-number field, so the help does not invite 0.5 where only whole numbers pass.
      const noun = r.int ? 'a whole number' : 'a number';
      if (r.min !== undefined && r.max !== undefined && r.minInclusive && r.maxInclusive) return `${noun} between ${r.min} and ${r.max}`;
      const parts: string[] = [];
      if (r.min !== undefined) parts.push(r.minInclusive ? `of at least ${r.min}` : `greater than ${r.min}`);
      if (r.max !== undefined) parts.push(r.maxInclusive ? `${r.min === undefined ? 'of ' : ''}at most ${r.max}` : `less than ${r.max}`);
      return parts.length ? `${noun} ${parts.join(' and ')}` : noun;
    }
    case 'boolean':
      return 'true or false';
    case 'enum':
      return `one of ${Object.values(def.entries as Record<string, string>).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'string': {
      if (schema.format === 'url') return 'a URL';
      const { min, max } = stringLength(schema);
      if (min !== undefined && max !== undefined) return `a string of ${min} to ${max} characters`;
      if (min !== undefined && min > 1) return `a string of at least ${min} characters`;
      if (max !== undefined) return `a string of at most ${max} characters`;
      return min === 1 ? 'a non-empty string' : 'a string';
    }
    case 'object':
      return 'a mapping of settings';
    case 'array':
      return `a list (comma-separated in the environment), each ${expected(def.element)}`;
    default:
      return def.type;
  }
}

/** Leaves whose value is not echoed; `url` is redis.url, which may hold a password. */
const SENSITIVE = /secret|token|password|publickey|^url$/i;

/** A value for an error message; secrets are described, not shown. */
function show(value: unknown, path: readonly PropertyKey[]): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const last = String(path[path.length - 1] ?? '');
  if (typeof value === 'string' && SENSITIVE.test(last)) return `a value of ${value.length} characters`;
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

// ---------------------------------------------------------------------------------------------------------- "did you mean"

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

function closest(name: string, candidates: readonly string[]): string | undefined {
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestDistance) { best = c; bestDistance = d; }
  }
  const allowed = Math.max(2, Math.floor(name.length / 4));
  if (best !== undefined && bestDistance <= allowed) return best;
  // PARLEY_PORT → PARLEY_SERVER_PORT: the same tail, with a section missing.
  if (name.startsWith(ENV_PREFIX)) {
    const tail = '_' + name.slice(ENV_PREFIX.length);
    const byTail = candidates.filter((c) => c.endsWith(tail));
    if (byTail.length === 1) return byTail[0];
  }
  return undefined;
}

// ------------------------------------------------------------------------------------------------------------ merging

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

class Sources {
  private readonly map = new Map<string, string>();
  set(path: readonly PropertyKey[], source: string): void {
    this.map.set(path.join('.'), source);
  }
  /** The source of the value at `path`: the longest recorded prefix, else 'default'. */
  get(path: readonly PropertyKey[]): string {
    for (let n = path.length; n >= 0; n--) {
      const s = this.map.get(path.slice(0, n).join('.'));
      if (s !== undefined) return s;
    }
    return 'default';
  }
}

/** Report keys the schema does not know (objects are checked against `schema`, recursively). */
function checkKeys(value: Plain, path: string[], label: (path: string[]) => string, problems: ConfigProblem[]): void {
  const node = schemaAt(path);
  const shape = node && shapeOf(node);
  if (!shape) return; // a type mistake; zod reports it
  for (const [key, child] of Object.entries(value)) {
    const childPath = [...path, key];
    if (!(key in shape)) {
      const hint = closest(key, Object.keys(shape));
      problems.push({
        path: childPath.join('.'),
        problem: `unknown setting${hint ? `; did you mean "${[...path, hint].join('.')}"?` : ''}`,
        source: label(childPath),
      });
    } else if (isPlain(child)) {
      checkKeys(child, childPath, label, problems);
    }
  }
}

/** Merge `src` into `target` (mutating it), recording where each value came from. Undefined and null mean unset. */
function mergeInto(target: Plain, src: Plain, path: string[], label: (path: string[]) => string, sources: Sources): void {
  for (const [key, value] of Object.entries(src)) {
    if (value === undefined || value === null) continue;
    const childPath = [...path, key];
    if (isPlain(value)) {
      if (!isPlain(target[key])) target[key] = {};
      sources.set(childPath, label(childPath));
      mergeInto(target[key] as Plain, value, childPath, label, sources);
    } else {
      target[key] = value;
      sources.set(childPath, label(childPath));
    }
  }
}

function setAt(target: Plain, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (!isPlain(node[key])) node[key] = {};
    node = node[key] as Plain;
  }
  node[path[path.length - 1]] = value;
}

function getAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let node = obj;
  for (const key of path) {
    if (Array.isArray(node) && typeof key === 'number') node = node[key];
    else if (!isPlain(node)) return undefined;
    else node = node[String(key)];
  }
  return node;
}

/** Coerce a string (environment variable or flag) to the leaf's type; a problem text when it cannot be. */
function coerce(leaf: Leaf, raw: string): { value: unknown } | { problem: string } {
  switch (leaf.kind) {
    case 'number': {
      const text = raw.trim();
      if (/^[-+]?(\d+(\.\d*)?|\.\d+)(e[-+]?\d+)?$/i.test(text)) return { value: Number(text) };
      return { problem: `expected ${expected(leaf.schema)}, got ${show(raw, leaf.path)}` };
    }
    case 'boolean': {
      const text = raw.trim().toLowerCase();
      if (text === 'true' || text === '1') return { value: true };
      if (text === 'false' || text === '0') return { value: false };
      return { problem: `expected true, false, 1 or 0, got ${show(raw, leaf.path)}` };
    }
    case 'list':
      return { value: raw.split(',').map((item) => item.trim()).filter(Boolean) };
    default:
      return { value: raw };
  }
}

/** Walk `src` and coerce string values sitting at number/boolean leaves (flags arrive as strings). */
function coerceStrings(src: Plain, path: string[], label: (path: string[]) => string, problems: ConfigProblem[]): Plain {
  const out: Plain = {};
  for (const [key, value] of Object.entries(src)) {
    const childPath = [...path, key];
    if (isPlain(value)) {
      out[key] = coerceStrings(value, childPath, label, problems);
      continue;
    }
    const leaf = leaves().byPath.get(childPath.join('.'));
    if (typeof value === 'string' && leaf && (leaf.kind === 'number' || leaf.kind === 'boolean')) {
      const result = coerce(leaf, value);
      if ('problem' in result) {
        problems.push({ path: leaf.dotted, problem: result.problem, source: label(childPath) });
        continue;
      }
      out[key] = result.value;
    } else {
      out[key] = value;
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------------------ loading

function readYaml(file: string, fileSource: string, problems: ConfigProblem[]): Plain | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a folder' : (err as Error).message;
    problems.push({ path: file, problem: `cannot read the config file: ${why}`, source: fileSource });
    return undefined;
  }
  const doc = yaml().parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = e.linePos?.[0];
      const where = pos ? ` at line ${pos.line}, column ${pos.col}` : '';
      problems.push({ path: file, problem: `YAML syntax error${where}: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`, source: fileSource });
    }
    return undefined;
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) return {};
  if (!isPlain(data)) {
    problems.push({ path: file, problem: 'expected a mapping of settings at the top level', source: fileSource });
    return undefined;
  }
  return data;
}

function describeIssue(issue: { code: string; path: PropertyKey[]; message: string; [k: string]: any }, input: unknown): string {
  const node = schemaAt(issue.path);
  const value = getAt(input, issue.path);
  switch (issue.code) {
    case 'invalid_type':
      if (value === undefined) return `missing; expected ${expected(node)}`;
      return `expected ${expected(node, value)}, got ${show(value, issue.path)}`;
    case 'too_small':
    case 'too_big':
      if (issue.origin === 'string' && typeof value === 'string') {
        return `expected ${expected(node)}, got ${value.length} character${value.length === 1 ? '' : 's'}`;
      }
      return `expected ${expected(node, value)}, got ${show(value, issue.path)}`;
    case 'invalid_format':
      // A pattern says best what it wants in its own message (e.g. server.cors.origins).
      if (issue.format === 'regex') return `expected ${issue.message}, got ${show(value, issue.path)}`;
      return `expected ${expected(node, value)}, got ${show(value, issue.path)}`;
    case 'invalid_value':
      return `expected ${expected(node, value)}, got ${show(value, issue.path)}`;
    default:
      return issue.message;
  }
}

/** Load, merge and validate the configuration. Throws ConfigError listing every mistake. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const problems: ConfigProblem[] = [];
  const sources = new Sources();
  // The base layer is the complete default config, so a section given in part (e.g. only limits.connectionRate.burst)
  // keeps the defaults of its other fields even where the schema's per-field defaults are missing.
  const merged = structuredClone(schemaDefaults()) as Plain;

  // 1. YAML file
  const file = options.file ?? (env.PARLEY_CONFIG || undefined);
  if (file !== undefined) {
    const fileSource = options.fileSource ?? (options.file !== undefined ? 'options.file' : 'PARLEY_CONFIG');
    const data = readYaml(file, fileSource, problems);
    if (data) {
      const label = () => file;
      checkKeys(data, [], label, problems);
      mergeInto(merged, data, [], label, sources);
    }
  }

  // 2. Environment
  const { byEnv } = leaves();
  const envNames = [...byEnv.keys(), ...reservedEnvironmentVariables];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith(ENV_PREFIX) || reservedEnvironmentVariables.has(name)) continue;
    const raw = env[name];
    const leaf = byEnv.get(name);
    if (!leaf) {
      const hint = closest(name, envNames);
      problems.push({ path: name, problem: `unknown environment variable${hint ? `; did you mean ${hint}?` : ''}`, source: 'environment' });
      continue;
    }
    if (raw === undefined || raw === '') continue;
    const result = coerce(leaf, raw);
    if ('problem' in result) problems.push({ path: leaf.dotted, problem: result.problem, source: name });
    else {
      setAt(merged, leaf.path, result.value);
      sources.set(leaf.path, name);
    }
  }

  // 3. Overrides
  if (options.overrides) {
    const labels = options.overrideSources ?? {};
    const label = (path: string[]) => {
      for (let n = path.length; n > 0; n--) {
        const l = labels[path.slice(0, n).join('.')];
        if (l) return l;
      }
      return 'command line';
    };
    const overrides = coerceStrings(options.overrides as Plain, [], label, problems);
    checkKeys(overrides, [], label, problems);
    mergeInto(merged, overrides, [], label, sources);
  }

  // 4. Validate
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') continue; // reported above, with a suggestion
      problems.push({
        path: issue.path.map(String).join('.') || '(top level)',
        problem: describeIssue(issue as any, merged),
        source: sources.get(issue.path),
      });
    }
  }
  if (problems.length > 0) throw new ConfigError(dedupe(problems));
  // Zod 4 hands out the schema's default objects themselves (not copies): copy before filling in derived values.
  const config = structuredClone(result.data!);

  // 5. Derived defaults
  config.store.sqlite.path ??= join(config.dataDir, 'parley.db');
  config.server.instanceId ??= `${hostname()}-${process.pid}`;
  return config;
}

function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.path}\0${p.problem}\0${p.source}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
