package io.llava4j.data;

/**
 * One problem with one record, for {@link DataValidator}'s report.
 *
 * @param index   the record's position in its file, from 0
 * @param id      its {@code id}, or null when it has none (or it could not be read)
 * @param problem the class of problem
 * @param message what is wrong, naming the file, record and field
 */
public record Finding(int index, String id, DataProblem problem, String message) {
}
