export {
  type AccumulatorOptions,
  type EvaluationCase,
  type EvaluationMetrics,
  MetricAccumulator,
} from './accumulator.js';
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
  coverageChart,
  type HistoryPoint,
  operatingPointRocChart,
  reliabilityChart,
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
export {
  type CalibrationReview,
  type ClassThresholdReview,
  chooseRules,
  DEFAULT_MIN_CALIBRATION_IMAGES,
  DEFAULT_REFERRAL_ACCURACY,
  DEFAULT_SENSITIVITY,
  DEFAULT_WORST_CASES,
  type OperatingPointReview,
  type ReferralRuleReview,
  type ReviewChoices,
  type ReviewOptions,
  reviewSplit,
  type SplitReview,
  withTemperature,
} from './review.js';
export { binaryAuc, type RocAverage, rocAuc, rocCurve } from './roc.js';
