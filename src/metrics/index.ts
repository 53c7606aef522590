export { type AccumulatorOptions, type EvaluationMetrics, MetricAccumulator } from './accumulator.js';
export { type BootstrapOptions, bootstrapConfidence, type Interval } from './bootstrap.js';
export {
  type ChartSpec,
  confusionMatrixChart,
  type HistoryPoint,
  rocChart,
  trainingCurvesChart,
} from './charts.js';
export {
  type AveragedMetrics,
  type ClassificationReport,
  type ClassificationReportOptions,
  type ClassMetrics,
  classificationReport,
} from './classification-report.js';
export { confusionMatrix } from './confusion-matrix.js';
export { formatFixed } from './format.js';
export type { LabelInput, ProbabilityInput } from './inputs.js';
export { type MissedFindings, missedFindings } from './missed-findings.js';
export { binaryAuc, type RocAverage, rocAuc, rocCurve } from './roc.js';
