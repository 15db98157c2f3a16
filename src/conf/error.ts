/** Raised for any problem with the node configuration: unreadable file, bad YAML, failed merge or validation. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
