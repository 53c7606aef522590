export { type AccumulatorOptions, type EvaluationMetrics, MetricAccumulator } from './accumulator.js';
export { type BootstrapOptions, bootstrapConfidence, type Interval } from './bootstrap.js';
export {
  applyTemperature,
  expectedCalibrationError,
  fitTemperature,
  type ReliabilityBin,
  reliabilityBins,
  type ScoreKind,
  type TemperatureFit,
  type TemperatureOptions,
} from './calibration.js';
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
export {
  type CaseRecord,
  caseRecords,
  mostConfused,
  predictionsCsv,
  topLosses,
} from './interpretation.js';
export { type MissedFindings, missedFindings } from './missed-findings.js';
export {
  abnormalRoc,
  abnormalScores,
  applyOperatingPoint,
  type OperatingPoint,
  type OperatingPointConfidence,
  type OperatingPointResult,
  operatingPointConfidence,
  predictWithThreshold,
  type ThresholdOptions,
  thresholdForSensitivity,
  thresholdsForSensitivity,
} from './operating-point.js';
export {
  type CoverageCurve,
  coverageAccuracy,
  type ReferralBy,
  type ReferralPoint,
  referCases,
  referralScores,
  referralThreshold,
} from './referral.js';
export { binaryAuc, type RocAverage, rocAuc, rocCurve } from './roc.js';
