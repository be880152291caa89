import { egressScenario } from './egress-scenario.ts';

egressScenario('haproxy');
