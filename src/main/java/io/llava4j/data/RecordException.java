package io.llava4j.data;

/** A {@link DataException} about one record, with the class of problem it is (for the validation report's counts). */
public class RecordException extends DataException {
    private final DataProblem problem;

    public RecordException(DataProblem problem, String message) {
        super(message);
        this.problem = problem;
    }

    public RecordException(DataProblem problem, String message, Throwable cause) {
        super(message, cause);
        this.problem = problem;
    }

    public DataProblem problem() {
        return problem;
    }
}
