import { egressScenario } from './egress-scenario.ts';

await egressScenario('haproxy');
