// Upstream health checks (APISIX's `checks`): settings and targets, the workers' healthy-node view
// and passive reports, and the main thread's active checkers. State lives in shm/health.ts.
export { checkerType, healthSettings, healthTargets, targetKey, type ChecksInput, type HealthSettings, type HealthTarget } from './config.ts';
export { HealthBalancer, HealthView, reportPassive, setHealthNotifier, type PassiveOutcome } from './view.ts';
export { ActiveChecker, probe, type CheckerOptions, type ProbeOutcome, type TargetReport } from './checker.ts';
